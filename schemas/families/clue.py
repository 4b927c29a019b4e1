"""问题线索移送 — a clue transferred to the agency with jurisdiction, then acknowledged,
accepted or returned, and finally disposed of. The clue's content is sealed on the wire."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import Field

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import (
    AggregateState,
    Context,
    Deadline,
    Fact,
    Kind,
    Payload,
    Tally,
    Transition,
    event,
    evolve,
    item_figures,
    refuse,
)
from jointbus.schemas.fields import AgencyId, Name, Ref, Text
from jointbus.schemas.ids import format_time, parse_time


class Person(Payload):
    """An official or unit a clue is about."""

    name: Name
    position: Name | None = None
    unit: Name


class ClueTransferredV1(Payload):
    """v1 of a clue transfer: one person, free text. Read through the v2 upcaster."""

    title: Name
    content: Text
    person_name: Name
    person_position: Name | None = None
    person_unit: Name

    @property
    def person(self) -> Person:
        """The one person of a v1 clue, as v2 names persons."""
        fields = {"name": self.person_name, "position": self.person_position, "unit": self.person_unit}
        return Person.model_validate({k: v for k, v in fields.items() if v is not None})


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"


class ClueTransferred(Payload):
    """问题线索移送: a clue sent to the agency with jurisdiction. Sealed on the wire."""

    title: Name
    summary: Text
    persons: list[Person] = Field(min_length=1, max_length=50)
    allegations: list[Text] = Field(min_length=1, max_length=50)
    jurisdiction_basis: Text
    evidence_refs: list[Ref] = Field(default_factory=list, max_length=100)
    urgency: Urgency = Urgency.NORMAL
    acknowledge_by: date


def _clue_v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    v1 = ClueTransferredV1.model_validate(old)
    return {
        "title": v1.title,
        "summary": v1.content,
        "persons": [v1.person.model_dump(mode="json")],
        "allegations": [v1.content],
        "jurisdiction_basis": "transferred under the v1 contract (basis not recorded)",
        "acknowledge_by": "9999-12-31",
    }


class ClueAcknowledged(Payload):
    """The receiving agency confirms it has the clue (a receipt, not yet acceptance)."""

    note: Text | None = None


class ClueAccepted(Payload):
    """The receiving agency takes the clue on and names who handles it."""

    handling_department: Name
    expected_by: date | None = None


class ReturnReason(StrEnum):
    NOT_OUR_JURISDICTION = "not_our_jurisdiction"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    DUPLICATE = "duplicate"
    OTHER = "other"


class ClueReturned(Payload):
    """The receiving agency sends the clue back, with a reason."""

    reason: ReturnReason
    explanation: Text


class Disposition(StrEnum):
    CLOSED_UNSUBSTANTIATED = "closed_unsubstantiated"
    CASE_OPENED = "case_opened"
    ORGANIZATIONAL_HANDLING = "organizational_handling"
    PASSED_ON = "passed_on"
    CLOSED_OTHER = "closed_other"


class ClueDispositionReported(Payload):
    """How the clue was finally disposed of (处置结果). Sealed: it may name persons."""

    disposition: Disposition
    summary: Text
    passed_on_to: AgencyId | None = None


class ClueState(AggregateState):
    """A transferred clue: who sent it, who must act, and by when it must be acknowledged."""

    kind: str = "clue"
    sender: str
    receiver: str
    ack_due: str
    acknowledged_at: str | None = None


def transferred(state: ClueState | None, env: Envelope, _: None, ctx: Context) -> ClueState:
    """A new clue, to exactly one agency, to be acknowledged within the bus's deadline (its
    payload is sealed: the router never reads it)."""
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already transferred")
    if len(env.recipients) != 1:
        refuse(Reason.BAD_TRANSITION, "a clue is transferred to exactly one agency")
    due = parse_time(env.time) + ctx.ack_within
    return ClueState(
        status="transferred", sender=env.sender, receiver=env.recipients[0], ack_due=format_time(due)
    )


def _step(family: str, allowed: tuple[str, ...], after: str) -> Transition:
    """A follow-up by the receiver, to the sender only, from one of the ``allowed`` statuses."""

    def followup(state: ClueState | None, env: Envelope, _: Payload | None, ctx: Context) -> ClueState:
        if not isinstance(state, ClueState):
            refuse(Reason.BAD_TRANSITION, f"{env.subject} is not a transferred clue")
        if env.sender != state.receiver:
            refuse(Reason.NOT_AUTHORIZED, f"only {state.receiver} acts on {env.subject}")
        if env.recipients != [state.sender]:
            refuse(Reason.NOT_AUTHORIZED, f"clue follow-ups go to {state.sender} only")
        if state.status not in allowed:
            refuse(Reason.BAD_TRANSITION, f"{family} is not allowed when the clue is {state.status}")
        acknowledged = env.time if state.status == "transferred" else state.acknowledged_at
        return evolve(state, status=after, acknowledged_at=acknowledged)

    return followup


def deadline(state: ClueState) -> Deadline | None:
    """An unacknowledged clue is owed by its receiver until ``ack_due``."""
    if state.status != "transferred":
        return None
    due = parse_time(state.ack_due)
    parties = tuple(sorted({state.receiver, state.sender}))
    return Deadline("clue_not_acknowledged", due.date(), due, state.receiver, parties)


def obligations(state: ClueState) -> tuple[tuple[str, str], ...]:
    """A clue is open on its receiver, for its sender, until it is returned, disposed of or
    refused (the statuses ``clues_open`` counts)."""
    return ((state.sender, state.receiver),) if state.status in _OPEN else ()


_OPEN = ("transferred", "acknowledged", "accepted")

_figures = item_figures(
    "clue",
    ("clue.transferred", "transferred"),
    {
        "clue.transferred": "clues_transferred",
        "clue.accepted": "clues_accepted",
        "clue.returned": "clues_returned",
        "clue.disposition_reported": "clues_disposed",
    },
    {
        "clue.acknowledged": "acknowledged",
        "clue.accepted": "accepted",
        "clue.returned": "returned",
        "clue.disposition_reported": "disposed",
    },
)


def project(tally: Tally, fact: Fact) -> None:
    """Clues sent, received, accepted, returned, disposed; open clues per receiver."""
    _figures(tally, fact)
    if fact.family == "clue.transferred":
        for agency in fact.recipients:
            tally.count(agency, "clues_received")


KIND = Kind(
    name="clue",
    order=10,
    events=(
        event(
            "clue.transferred",
            1,
            ClueTransferredV1,
            {"title": "线索", "content": "反映内容", "person_name": "李某", "person_unit": "某公司"},
            sensitive=True,
            upcast=_clue_v1_to_v2,
        ),
        event(
            "clue.transferred",
            2,
            ClueTransferred,
            {
                "title": "自永高速（自贡段）某标段项目经理涉嫌违规分包",
                "summary": "群众反映该标段项目经理将主体工程违规分包给其亲属控制的公司。",
                "persons": [{"name": "李某", "position": "项目经理", "unit": "永川某路桥公司"}],
                "allegations": ["违规分包主体工程", "利用职务便利为亲属谋利"],
                "jurisdiction_basis": "被反映人系永川区管理的国有企业干部",
                "evidence_refs": ["doc:zg-2026-0113"],
                "urgency": "urgent",
                "acknowledge_by": "2026-12-02",
            },
            sensitive=True,
        ),
        event("clue.acknowledged", 1, ClueAcknowledged, {"note": "已收到，正在登记"}),
        event(
            "clue.accepted",
            1,
            ClueAccepted,
            {"handling_department": "第三监督检查室", "expected_by": "2027-02-28"},
        ),
        event(
            "clue.returned",
            1,
            ClueReturned,
            {"reason": "not_our_jurisdiction", "explanation": "被反映人已调任江津区"},
        ),
        event(
            "clue.disposition_reported",
            1,
            ClueDispositionReported,
            {"disposition": "case_opened", "summary": "经初步核实，已立案审查调查"},
            sensitive=True,
        ),
    ),
    state=ClueState,
    transitions={
        "clue.transferred": transferred,
        "clue.acknowledged": _step("clue.acknowledged", ("transferred",), "acknowledged"),
        "clue.accepted": _step("clue.accepted", ("transferred", "acknowledged"), "accepted"),
        "clue.returned": _step("clue.returned", ("transferred", "acknowledged"), "returned"),
        "clue.disposition_reported": _step("clue.disposition_reported", ("accepted",), "disposed"),
    },
    columns=(
        "clues_transferred",
        "clues_received",
        "clues_accepted",
        "clues_returned",
        "clues_disposed",
        "clues_open",
    ),
    project=project,
    deadline=deadline,
    refusable={"clue.transferred": ("transferred", "undeliverable")},
    open_column="clues_open",
    open_statuses=_OPEN,
    obligations=obligations,
)
