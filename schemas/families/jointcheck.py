"""联合监督检查 — a joint (or cross) supervision check of a major project: the convener
invites agencies, each accepts with staff or declines, participants report findings."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import AggregateState, Context, Fact, Kind, Payload, Tally, event, evolve, refuse
from jointbus.schemas.fields import AgencyId, Name, Ref, Text


class Project(Payload):
    """A major project under joint supervision."""

    name: Name
    location: Name
    kind: Name


class JointCheckInvited(Payload):
    """联合监督检查: the convener invites agencies to a joint or cross check."""

    project: Project
    scope: Text
    start_date: date
    end_date: date
    staff_requested: dict[AgencyId, Annotated[int, Field(ge=0, le=50)]]
    respond_by: date


class StaffMember(Payload):
    """Someone an agency lends to a check."""

    name: Name
    role: Name


class JointCheckResponded(Payload):
    """An invitee accepts (naming staff) or declines (with a reason)."""

    accepted: bool
    staff: list[StaffMember] = Field(default_factory=list, max_length=50)
    decline_reason: Text | None = None


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Finding(Payload):
    """One problem a check found."""

    finding_id: Ref
    category: Name
    description: Text
    severity: Severity
    responsible_unit: Name


class JointCheckFindingsReported(Payload):
    """The check's findings, reported by a participating agency."""

    findings: list[Finding] = Field(min_length=0, max_length=200)


class CheckState(AggregateState):
    """A convened check: who convened it, who was invited, who answered how."""

    kind: str = "jointcheck"
    convener: str
    invitees: tuple[str, ...]
    responses: tuple[tuple[str, bool], ...] = ()  # (invitee, joined), in answer order
    findings: int = 0


def invited(state: CheckState | None, env: Envelope, payload: JointCheckInvited, _: Context) -> CheckState:
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already convened")
    if not set(payload.staff_requested) <= set(env.recipients):
        refuse(Reason.NOT_AUTHORIZED, "staff requested from an agency not invited")
    return CheckState(status="open", convener=env.sender, invitees=tuple(env.recipients))


def _convened(state: CheckState | None, env: Envelope) -> CheckState:
    if not isinstance(state, CheckState):
        refuse(Reason.BAD_TRANSITION, f"{env.subject} is not a convened joint check")
    return state


def responded(
    state: CheckState | None, env: Envelope, payload: JointCheckResponded, _: Context
) -> CheckState:
    check = _convened(state, env)
    if env.sender not in check.invitees:
        refuse(Reason.NOT_AUTHORIZED, f"{env.sender} was not invited to {env.subject}")
    if check.convener not in env.recipients:
        refuse(Reason.NOT_AUTHORIZED, "a response must reach the convener")
    if env.sender in dict(check.responses):
        refuse(Reason.BAD_TRANSITION, f"{env.sender} already responded")
    if payload.accepted and not payload.staff:
        refuse(Reason.BAD_TRANSITION, "an acceptance names the staff lent")
    if not payload.accepted and not payload.decline_reason:
        refuse(Reason.BAD_TRANSITION, "a decline gives a reason")
    return evolve(check, responses=(*check.responses, (env.sender, payload.accepted)))


def findings_reported(state: CheckState | None, env: Envelope, _: Any, __: Context) -> CheckState:
    check = _convened(state, env)
    participants = {check.convener, *(a for a, joined in check.responses if joined)}
    if env.sender not in participants:
        refuse(Reason.NOT_AUTHORIZED, f"{env.sender} does not take part in {env.subject}")
    return evolve(check, status="findings_reported", findings=check.findings + 1)


def obligations(state: CheckState) -> tuple[tuple[str, str], ...]:
    """An invitation is open on each invitee, for the convener, until it responds."""
    answered = {invitee for invitee, _ in state.responses}
    return tuple((state.convener, i) for i in state.invitees if i not in answered)


def project(tally: Tally, fact: Fact) -> None:
    """Checks convened, joined (acceptances), findings reported."""
    if fact.family == "jointcheck.invited":
        tally.count(fact.sender, "checks_convened")
        tally.total("checks_convened")
    elif fact.family == "jointcheck.findings_reported":
        tally.count(fact.sender, "findings_reported")
        tally.total("findings_reported")
    elif fact.family == "jointcheck.responded":
        payload = fact.payload()
        if isinstance(payload, JointCheckResponded) and payload.accepted:
            tally.count(fact.sender, "checks_joined")
            tally.total("checks_joined")


KIND = Kind(
    name="jointcheck",
    order=20,
    events=(
        event(
            "jointcheck.invited",
            1,
            JointCheckInvited,
            {
                "project": {"name": "向家坝灌区北总干渠", "location": "宜宾—自贡—内江", "kind": "irrigation"},
                "scope": "工程质量、资金使用与征地补偿",
                "start_date": "2026-12-07",
                "end_date": "2026-12-18",
                "staff_requested": {"sc-zigong": 2, "sc-neijiang": 2},
                "respond_by": "2026-12-01",
            },
        ),
        event(
            "jointcheck.responded",
            1,
            JointCheckResponded,
            {"accepted": True, "staff": [{"name": "王某", "role": "检查组员"}]},
        ),
        event(
            "jointcheck.findings_reported",
            1,
            JointCheckFindingsReported,
            {
                "findings": [
                    {
                        "finding_id": "F-1",
                        "category": "工程质量",
                        "description": "渠道衬砌混凝土强度不达标",
                        "severity": "high",
                        "responsible_unit": "某水利工程局",
                    }
                ]
            },
        ),
    ),
    state=CheckState,
    transitions={
        "jointcheck.invited": invited,
        "jointcheck.responded": responded,
        "jointcheck.findings_reported": findings_reported,
    },
    columns=("checks_convened", "checks_joined", "findings_reported"),
    project=project,
    obligations=obligations,
)
