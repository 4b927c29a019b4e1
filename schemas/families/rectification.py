"""整改 — a finding becomes an item issued to the responsible side with a deadline; progress
and completion are reported, and the issuer verifies (销号) or reopens it."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field

from jointbus.schemas.deadlines import deadline_moment, still_ahead
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import (
    AggregateState,
    Context,
    Deadline,
    Kind,
    Payload,
    Transition,
    event,
    evolve,
    item_figures,
    refuse,
)
from jointbus.schemas.fields import Name, Ref, Text


class RectificationIssued(Payload):
    """整改: a finding becomes an item issued to a responsible unit with a deadline."""

    responsible_unit: Name
    problem: Text
    deadline: date
    source_check: Ref | None = None
    source_finding: Ref | None = None


class RectificationProgressReported(Payload):
    """Progress on an open item."""

    percent_complete: Annotated[int, Field(ge=0, le=100)]
    note: Text


class RectificationCompletionReported(Payload):
    """The responsible side reports the item done, with evidence."""

    summary: Text
    evidence_refs: list[Ref] = Field(default_factory=list, max_length=100)


class RectificationVerified(Payload):
    """The issuing agency verifies and closes the item (销号)."""

    note: Text


class RectificationReopened(Payload):
    """The issuing agency finds the work insufficient and reopens the item."""

    reason: Text
    new_deadline: date


class RectificationState(AggregateState):
    """An issued item: its issuer, the agencies responsible, and its current deadline."""

    kind: str = "rectification"
    issuer: str
    responsible: tuple[str, ...]
    deadline: date
    reopened: int = 0


def issued(
    state: RectificationState | None, env: Envelope, payload: RectificationIssued, _: Context
) -> RectificationState:
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already issued")
    if not still_ahead(payload.deadline, env.time):
        refuse(Reason.BAD_TRANSITION, f"deadline {payload.deadline} has passed at {env.time}")
    return RectificationState(
        status="open", issuer=env.sender, responsible=tuple(env.recipients), deadline=payload.deadline
    )


def _step(family: str, allowed: tuple[str, ...], after: str | None, actor: str) -> Transition:
    """A follow-up by the issuer or the responsible side, reaching every other party."""

    def followup(
        state: RectificationState | None, env: Envelope, payload: Payload | None, _: Context
    ) -> RectificationState:
        if not isinstance(state, RectificationState):
            refuse(Reason.BAD_TRANSITION, f"{env.subject} is not an issued rectification")
        may_act = (state.issuer,) if actor == "issuer" else state.responsible
        if env.sender not in may_act:
            refuse(Reason.NOT_AUTHORIZED, f"only {', '.join(may_act)} may send {family} here")
        parties = {state.issuer, *state.responsible} - {env.sender}
        if not parties <= set(env.recipients):
            refuse(Reason.NOT_AUTHORIZED, f"{family} must reach {', '.join(sorted(parties))}")
        if state.status not in allowed:
            refuse(Reason.BAD_TRANSITION, f"{family} is not allowed when the item is {state.status}")
        if isinstance(payload, RectificationReopened):
            if not still_ahead(payload.new_deadline, env.time):
                refuse(Reason.BAD_TRANSITION, f"new deadline {payload.new_deadline} has passed at {env.time}")
            return evolve(
                state, status="reopened", deadline=payload.new_deadline, reopened=state.reopened + 1
            )
        return evolve(state, status=after or state.status)

    return followup


def deadline(state: RectificationState) -> Deadline | None:
    """An open (or reopened) item is owed by its first responsible agency until its date ends."""
    if state.status not in ("open", "reopened"):
        return None
    due = deadline_moment(state.deadline)
    parties = tuple(sorted({*state.responsible, state.issuer}))
    return Deadline("rectification_past_deadline", state.deadline, due, state.responsible[0], parties)


_OPEN = ("open", "completed", "reopened")


def obligations(state: RectificationState) -> tuple[tuple[str, str], ...]:
    """An item is open on each responsible agency, for its issuer, until it is verified (the
    statuses ``rect_open`` counts)."""
    if state.status not in _OPEN:
        return ()
    return tuple((state.issuer, r) for r in state.responsible)


#: items issued, completed, verified, reopened; open items per responsible agency
project = item_figures(
    "rectification",
    ("rectification.issued", "open"),
    {
        "rectification.issued": "rect_issued",
        "rectification.completion_reported": "rect_completed",
        "rectification.verified": "rect_verified",
        "rectification.reopened": "rect_reopened",
    },
    {
        "rectification.completion_reported": "completed",
        "rectification.verified": "verified",
        "rectification.reopened": "reopened",
    },
)


KIND = Kind(
    name="rectification",
    order=30,
    events=(
        event(
            "rectification.issued",
            1,
            RectificationIssued,
            {
                "responsible_unit": "某水利工程局",
                "problem": "渠道衬砌混凝土强度不达标",
                "deadline": "2027-01-31",
                "source_check": "jointcheck/0195",
                "source_finding": "F-1",
            },
        ),
        event(
            "rectification.progress_reported",
            1,
            RectificationProgressReported,
            {"percent_complete": 60, "note": "已返工 3.2 公里"},
        ),
        event(
            "rectification.completion_reported",
            1,
            RectificationCompletionReported,
            {"summary": "返工完成并经第三方检测合格"},
        ),
        event("rectification.verified", 1, RectificationVerified, {"note": "经现场核查，同意销号"}),
        event(
            "rectification.reopened",
            1,
            RectificationReopened,
            {"reason": "抽检仍有两段不合格", "new_deadline": "2027-03-15"},
        ),
    ),
    state=RectificationState,
    transitions={
        "rectification.issued": issued,
        "rectification.progress_reported": _step(
            "rectification.progress_reported", ("open", "reopened"), None, "responsible"
        ),
        "rectification.completion_reported": _step(
            "rectification.completion_reported", ("open", "reopened"), "completed", "responsible"
        ),
        "rectification.verified": _step("rectification.verified", ("completed",), "verified", "issuer"),
        "rectification.reopened": _step(
            "rectification.reopened", ("completed", "verified"), "reopened", "issuer"
        ),
    },
    columns=("rect_issued", "rect_completed", "rect_verified", "rect_reopened", "rect_open"),
    project=project,
    deadline=deadline,
    open_column="rect_open",
    open_statuses=_OPEN,
    obligations=obligations,
)
