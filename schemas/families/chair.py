"""轮值制度 — the rotating chair of the joint meeting: one chain on the subject
``chair/rotation``, starting at the registry's ``chair``; only the current chair passes it
on. Meetings and mechanisms are recorded by the chair (``current_chair``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import AggregateState, Context, Kind, Payload, Transition, event, refuse
from jointbus.schemas.fields import AgencyId

#: the one aggregate that carries the chair of the joint meeting
CHAIR_SUBJECT = "chair/rotation"


class ChairRotated(Payload):
    """轮值制度: the chair passes to the next agency for a term."""

    new_chair: AgencyId
    term_start: date
    term_end: date


class ChairState(AggregateState):
    """Who holds the chair now."""

    kind: str = "chair"
    chair: str


def current_chair(ctx: Context) -> str | None:
    """The chair now: the chair chain's last holder, else the registry's."""
    chain = ctx.state_of(CHAIR_SUBJECT, ChairState)
    return chain.chair if chain is not None else ctx.registry.chair


def rotated(state: ChairState | None, env: Envelope, payload: ChairRotated, ctx: Context) -> ChairState:
    if env.subject != CHAIR_SUBJECT:
        refuse(Reason.BAD_TRANSITION, f"the chair is passed on {CHAIR_SUBJECT} only")
    chair = state.chair if state is not None else ctx.registry.chair
    if env.sender != chair:
        refuse(Reason.NOT_AUTHORIZED, f"only the current chair {chair} passes the chair")
    if payload.new_chair == chair or not ctx.registry.is_agency(payload.new_chair):
        refuse(Reason.BAD_TRANSITION, f"{payload.new_chair} cannot take the chair from {chair}")
    if payload.term_end <= payload.term_start:
        refuse(Reason.BAD_TRANSITION, "a chair's term ends after it starts")
    return ChairState(status="rotated", chair=payload.new_chair)


def one_shot(kind: str) -> Transition:
    """A record made once, by the current chair, on a fresh subject (meetings, mechanisms)."""

    def recorded(state: AggregateState | None, env: Envelope, _: Any, ctx: Context) -> AggregateState:
        chair = current_chair(ctx)
        if env.sender != chair:
            refuse(Reason.NOT_AUTHORIZED, f"only the current chair {chair} records a {kind}")
        if state is not None:
            refuse(Reason.BAD_TRANSITION, f"{env.subject} is already recorded")
        return AggregateState(kind=kind, status="recorded")

    return recorded


KIND = Kind(
    name="chair",
    order=70,
    events=(
        event(
            "chair.rotated",
            1,
            ChairRotated,
            {"new_chair": "sc-yibin", "term_start": "2027-01-01", "term_end": "2027-06-30"},
        ),
    ),
    state=ChairState,
    transitions={"chair.rotated": rotated},
)
