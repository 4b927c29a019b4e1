"""The router's own signed notices: a rejection to the sender of a refused event, and an
alert when a deadline passes. Only the router publishes them; nobody answers them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field

from jointbus.schemas.family import Fact, Kind, Payload, Tally, event
from jointbus.schemas.fields import AgencyId


class RejectionNotice(Payload):
    """The router's signed answer to a sender whose event it rejected."""

    rejected_event_id: Annotated[str, Field(max_length=64)]
    rejected_type: Annotated[str, Field(max_length=200)]
    reason: Annotated[str, Field(max_length=40)]
    detail: Annotated[str, Field(max_length=1000)]


class AcceptanceNotice(Payload):
    """The router's signed answer to a sender whose event it accepted, and to whom it went."""

    accepted_event_id: Annotated[str, Field(max_length=64)]
    accepted_type: Annotated[str, Field(max_length=200)]
    delivered_to: list[AgencyId] = Field(max_length=64)


class ItemOverdue(Payload):
    """A deadline passed: a clue not acknowledged, or a rectification not completed."""

    aggregate: Annotated[str, Field(max_length=200)]
    what: Literal["clue_not_acknowledged", "rectification_past_deadline"]
    deadline: date
    responsible: AgencyId


def project(tally: Tally, fact: Fact) -> None:
    """Deadlines missed, per responsible agency."""
    if fact.family == "deadline.overdue":
        payload = fact.payload()
        if isinstance(payload, ItemOverdue):
            tally.count(payload.responsible, "overdue")
            tally.total("overdue")


KIND = Kind(
    name="notice",
    order=40,
    events=(
        event(
            "rejection",
            1,
            RejectionNotice,
            {
                "rejected_event_id": "01950c2a-0000-7000-8000-000000000009",
                "rejected_type": "org.jointbus.clue.transferred.v2",
                "reason": "bad_signature",
                "detail": "signature does not verify",
            },
            publishers=("router",),
            answered=False,
        ),
        event(
            "acceptance",
            1,
            AcceptanceNotice,
            {
                "accepted_event_id": "01950c2a-0000-7000-8000-000000000009",
                "accepted_type": "org.jointbus.rectification.issued.v1",
                "delivered_to": ["cq-yongchuan"],
            },
            publishers=("router",),
            answered=False,
        ),
        event(
            "deadline.overdue",
            1,
            ItemOverdue,
            {
                "aggregate": "clue/0195",
                "what": "clue_not_acknowledged",
                "deadline": "2026-12-02",
                "responsible": "cq-yongchuan",
            },
            publishers=("router",),
            answered=False,
        ),
    ),
    columns=("overdue",),
    project=project,
)
