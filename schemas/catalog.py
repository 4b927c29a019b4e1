"""The event catalog: every event type, its payload model, sensitivity and aggregate.

Type names are versioned (``org.jointbus.clue.transferred.v2``). Older versions stay in
the catalog with an upcaster to the next version, so history written years ago is still
read as today's model (the eventsourcing pattern): payloads are upcast after the signature
is verified, never before, because the signature covers the bytes as they were sent.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jointbus.schemas.errors import Reason, rejection

TYPE_PREFIX = "org.jointbus."
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
AgencyId = Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$")]
Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]{1,120}$")]


class Payload(BaseModel):
    """Base of every event payload: closed (unknown fields are an error) and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- clue transfer
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
        "persons": [{"name": v1.person_name, "position": v1.person_position, "unit": v1.person_unit}],
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


# ---------------------------------------------------------------- joint supervision check
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

    findings: list[Finding] = Field(min_length=0, max_length=500)


# -------------------------------------------------------------------------- rectification
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


# ------------------------------------------------------------------- receipts, governance
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


class JointMeetingHeld(Payload):
    """The agencies' joint meeting (联席会议), under the current rotating chair."""

    chair: AgencyId
    held_on: date
    attendees: list[AgencyId] = Field(min_length=1, max_length=8)
    topics: list[Name] = Field(min_length=1, max_length=50)


class ChairRotated(Payload):
    """轮值制度: the chair passes to the next agency for a term."""

    new_chair: AgencyId
    term_start: date
    term_end: date


class MechanismEstablished(Payload):
    """A shared rule or working mechanism the agencies adopt (and count)."""

    title: Name
    kind: Name
    participants: list[AgencyId] = Field(min_length=1, max_length=8)
    effective_from: date


# --------------------------------------------------------------------- bus service events
class RejectionNotice(Payload):
    """The router's signed answer to a sender whose event it rejected."""

    rejected_event_id: Annotated[str, Field(max_length=64)]
    rejected_type: Annotated[str, Field(max_length=200)]
    reason: Annotated[str, Field(max_length=40)]
    detail: Annotated[str, Field(max_length=1000)]


class ItemOverdue(Payload):
    """A deadline passed: a clue not acknowledged, or a rectification not completed."""

    aggregate: Annotated[str, Field(max_length=200)]
    what: Literal["clue_not_acknowledged", "rectification_past_deadline"]
    deadline: date
    responsible: AgencyId


# ------------------------------------------------------------------------------ the catalog
@dataclass(frozen=True)
class EventSpec:
    """What the bus knows of one versioned event type."""

    type: str
    family: str
    version: int
    model: builtins.type[Payload]
    aggregate: str
    sensitive: bool = False
    upcast: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def is_current(self) -> bool:
        return self.upcast is None


def _spec(family: str, version: int, model: type[Payload], aggregate: str, **kw: Any) -> EventSpec:
    return EventSpec(f"{TYPE_PREFIX}{family}.v{version}", family, version, model, aggregate, **kw)


CATALOG: dict[str, EventSpec] = {
    s.type: s
    for s in [
        _spec("clue.transferred", 1, ClueTransferredV1, "clue", sensitive=True, upcast=_clue_v1_to_v2),
        _spec("clue.transferred", 2, ClueTransferred, "clue", sensitive=True),
        _spec("clue.acknowledged", 1, ClueAcknowledged, "clue"),
        _spec("clue.accepted", 1, ClueAccepted, "clue"),
        _spec("clue.returned", 1, ClueReturned, "clue"),
        _spec("clue.disposition_reported", 1, ClueDispositionReported, "clue", sensitive=True),
        _spec("jointcheck.invited", 1, JointCheckInvited, "jointcheck"),
        _spec("jointcheck.responded", 1, JointCheckResponded, "jointcheck"),
        _spec("jointcheck.findings_reported", 1, JointCheckFindingsReported, "jointcheck"),
        _spec("rectification.issued", 1, RectificationIssued, "rectification"),
        _spec("rectification.progress_reported", 1, RectificationProgressReported, "rectification"),
        _spec(
            "rectification.completion_reported",
            1,
            RectificationCompletionReported,
            "rectification",
        ),
        _spec("rectification.verified", 1, RectificationVerified, "rectification"),
        _spec("rectification.reopened", 1, RectificationReopened, "rectification"),
        _spec("receipt", 1, Receipt, "receipt"),
        _spec("meeting.held", 1, JointMeetingHeld, "meeting"),
        _spec("chair.rotated", 1, ChairRotated, "chair"),
        _spec("mechanism.established", 1, MechanismEstablished, "mechanism"),
        _spec("rejection", 1, RejectionNotice, "notice"),
        _spec("deadline.overdue", 1, ItemOverdue, "notice"),
    ]
}

#: the newest version of each family, which publishers use
CURRENT: dict[str, EventSpec] = {s.family: s for s in CATALOG.values() if s.is_current}


def family_of(event_type: str) -> str:
    """The family of a versioned type name (``org.jointbus.clue.transferred.v2`` →
    ``clue.transferred``), whether or not the catalog knows it."""
    return event_type.removeprefix(TYPE_PREFIX).rsplit(".v", 1)[0]


def spec_of(event_type: str) -> EventSpec:
    """The catalog entry of ``event_type``; ``unknown_type`` if there is none."""
    try:
        return CATALOG[event_type]
    except KeyError:
        raise rejection(Reason.UNKNOWN_TYPE, f"unknown event type {event_type[:120]!r}") from None


def type_of(family: str) -> str:
    """The current versioned type name of a family such as ``clue.transferred``."""
    try:
        return CURRENT[family].type
    except KeyError:
        raise rejection(Reason.UNKNOWN_TYPE, f"unknown event family {family[:120]!r}") from None


def parse_payload(event_type: str, data: dict[str, Any]) -> Payload:
    """Validate ``data`` as ``event_type`` and upcast it to the current version's model."""
    spec = spec_of(event_type)
    try:
        while spec.upcast is not None:
            data = spec.upcast(data)
            spec = CURRENT[spec.family]
        return spec.model.model_validate(data)
    except ValidationError as exc:
        raise rejection(Reason.SCHEMA, f"{event_type}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"[:300]
