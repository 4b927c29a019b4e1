"""Receipts: a recipient confirms it received (and, if sealed, opened) an event — or
refuses it. A receipt belongs to the aggregate of the event it answers; the lifecycle core
(``schemas.lifecycle``) checks it against that aggregate's accepted events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from jointbus.schemas.family import Fact, Kind, Payload, Tally, event


class Receipt(Payload):
    """A recipient confirms it received (and, if sealed, opened) an event — or refuses it.

    ``refused`` says the recipient's system could not open or accept what the router
    delivered (``reason``: a stable reason code such as ``seal_broken``). The router then
    marks the obligation undeliverable and the sender learns it from this receipt, so no
    figure counts an item its recipient never saw.
    """

    event_id: Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
    event_type: Annotated[str, Field(max_length=120)]
    status: Literal["received", "opened", "refused"]
    reason: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")] | None = None

    @model_validator(mode="after")
    def _refusal_has_reason(self) -> Receipt:
        if (self.status == "refused") != (self.reason is not None):
            raise ValueError("a refused receipt gives a reason code, and only a refused one")
        return self


def project(tally: Tally, fact: Fact) -> None:
    """A refused delivery leaves the item's open figures (its kind says how)."""
    payload = fact.payload()
    if isinstance(payload, Receipt) and payload.status == "refused":
        tally.refused(fact.subject, payload.event_type)


KIND = Kind(
    name="receipt",
    order=50,
    events=(
        event(
            "receipt",
            1,
            Receipt,
            {
                "event_id": "01950c2a-0000-7000-8000-000000000001",
                "event_type": "org.jointbus.clue.transferred.v2",
                "status": "opened",
            },
            publishers=("agency", "router"),
            answered=False,
        ),
    ),
    project=project,
)
