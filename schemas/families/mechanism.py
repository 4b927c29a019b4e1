"""工作机制 — a shared rule or working mechanism the joint meeting adopts, recorded by its
chair (so no agency can credit others with mechanisms they never agreed to)."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from jointbus.schemas.family import AggregateState, Fact, Kind, Payload, Tally, event, recorded_by_chair
from jointbus.schemas.fields import AgencyId, Name


class MechanismEstablished(Payload):
    """A shared rule or working mechanism the agencies adopt (and count)."""

    title: Name
    kind: Name
    participants: list[AgencyId] = Field(min_length=1, max_length=8)
    effective_from: date


def project(tally: Tally, fact: Fact) -> None:
    """Mechanisms, per participating agency."""
    payload = fact.payload()
    if isinstance(payload, MechanismEstablished):
        tally.total("mechanisms")  # the collaboration's figure: each mechanism once
        for agency in payload.participants:  # participation, per agency
            tally.count(agency, "mechanisms")


KIND = Kind(
    name="mechanism",
    order=80,
    events=(
        event(
            "mechanism.established",
            1,
            MechanismEstablished,
            {
                "title": "干部交叉检查人员互派机制",
                "kind": "staff exchange",
                "participants": ["sc-zigong", "cq-yongchuan"],
                "effective_from": "2026-12-01",
            },
        ),
    ),
    state=AggregateState,
    transitions={"mechanism.established": recorded_by_chair("mechanism")},
    columns=("mechanisms",),
    project=project,
)
