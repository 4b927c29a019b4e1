"""联席会议 — the joint meeting of the agencies, recorded by the current rotating chair."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import (
    AggregateState,
    Context,
    Fact,
    Kind,
    Payload,
    Tally,
    current_chair,
    event,
    recorded_by_chair,
    refuse,
)
from jointbus.schemas.fields import AgencyId, Name


class JointMeetingHeld(Payload):
    """The agencies' joint meeting (联席会议), under the current rotating chair."""

    chair: AgencyId
    held_on: date
    attendees: list[AgencyId] = Field(min_length=1, max_length=8)
    topics: list[Name] = Field(min_length=1, max_length=50)


_record = recorded_by_chair("meeting")


def held(
    state: AggregateState | None, env: Envelope, payload: JointMeetingHeld, ctx: Context
) -> AggregateState:
    chair = current_chair(ctx)
    if payload.chair != chair:
        refuse(Reason.NOT_AUTHORIZED, f"only the current chair {chair} records a joint meeting")
    return _record(state, env, payload, ctx)


def project(tally: Tally, fact: Fact) -> None:
    """Meetings chaired, per chair."""
    payload = fact.payload()
    if isinstance(payload, JointMeetingHeld):
        tally.count(payload.chair, "meetings_chaired")
        tally.total("meetings_chaired")


KIND = Kind(
    name="meeting",
    order=60,
    events=(
        event(
            "meeting.held",
            1,
            JointMeetingHeld,
            {
                "chair": "cq-rongchang",
                "held_on": "2026-11-20",
                "attendees": ["cq-rongchang", "sc-neijiang", "cq-dazu"],
                "topics": ["长江十年禁渔联合监督", "跨界河流污染治理"],
            },
        ),
    ),
    state=AggregateState,
    transitions={"meeting.held": held},
    columns=("meetings_chaired",),
    project=project,
)
