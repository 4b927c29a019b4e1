"""Projections: the figures the agencies count, rebuilt from audit records alone.

``jointbus status`` shows them live and ``jointbus audit replay`` rebuilds them from
history; both fold the same function over the same records, so they cannot disagree.
Rows are the registry's member agencies, in registry order: a new member gets its row the
moment the registry names it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jointbus.schemas.catalog import (
    JointCheckResponded,
    MechanismEstablished,
    Receipt,
    family_of,
    parse_payload,
)
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import parse_time
from jointbus.schemas.records import AuditRecord

COLUMNS = (
    "clues_transferred",
    "clues_received",
    "clues_accepted",
    "clues_returned",
    "clues_disposed",
    "clues_open",
    "checks_convened",
    "checks_joined",
    "findings_reported",
    "rect_issued",
    "rect_completed",
    "rect_verified",
    "rect_reopened",
    "rect_open",
    "overdue",
    "mechanisms",
    "meetings_chaired",
    "rejected",
)


@dataclass
class Projection:
    """Per-agency counters and the open items behind them, for the member agencies
    ``agencies`` (``Registry.agencies``): only members are counted, one row each. Reading the
    counts of a non-member gives zeros."""

    agencies: tuple[str, ...]
    counts: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    clues: dict[str, tuple[str, str]] = field(default_factory=dict)  # subject -> (receiver, status)
    rects: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    records: int = 0
    until: str | None = None
    unit: str = "audit records"
    _members: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._members = frozenset(self.agencies)

    def member(self, agency: str) -> bool:
        """True for a member agency (one that has a row)."""
        return agency in self._members

    def rows(self) -> list[dict[str, Any]]:
        """One row per agency with every column (open items computed from the items)."""
        open_clues = Counter(r for r, status in self.clues.values() if status in _CLUE_OPEN)
        open_rects: Counter[str] = Counter()
        for responsible, status in self.rects.values():
            if status != "verified":
                open_rects.update(responsible)
        out = []
        for agency in self.agencies:
            c = self.counts[agency]
            c["clues_open"], c["rect_open"] = open_clues[agency], open_rects[agency]
            out.append({"agency": agency, **{col: c[col] for col in COLUMNS}})
        return out


_CLUE_OPEN = ("transferred", "acknowledged", "accepted")
_CLUE_STATUS = {
    "clue.acknowledged": "acknowledged",
    "clue.accepted": "accepted",
    "clue.returned": "returned",
    "clue.disposition_reported": "disposed",
}
_RECT_STATUS = {
    "rectification.completion_reported": "completed",
    "rectification.verified": "verified",
    "rectification.reopened": "reopened",
}
_SENDER_COUNTS = {
    "clue.transferred": "clues_transferred",
    "clue.accepted": "clues_accepted",
    "clue.returned": "clues_returned",
    "clue.disposition_reported": "clues_disposed",
    "jointcheck.invited": "checks_convened",
    "jointcheck.findings_reported": "findings_reported",
    "rectification.issued": "rect_issued",
    "rectification.completion_reported": "rect_completed",
    "rectification.verified": "rect_verified",
    "rectification.reopened": "rect_reopened",
}


def apply(p: Projection, record: AuditRecord) -> None:
    """Fold one audit record into the projection (duplicates by position are ignored)."""
    if record.position in p.seen:
        return
    p.seen.add(record.position)
    p.records += 1
    sender = record.sender or ""
    if record.decision == "rejected":
        if p.member(sender):
            p.counts[sender]["rejected"] += 1
        return
    event = record.event or {}
    family = family_of(str(event.get("type", "")))
    subject = str(event.get("subject", ""))
    recipients = [str(r) for r in event.get("recipients", [])]
    if family in _SENDER_COUNTS and p.member(sender):
        p.counts[sender][_SENDER_COUNTS[family]] += 1
    if family == "clue.transferred":
        for r in recipients:
            if p.member(r):
                p.counts[r]["clues_received"] += 1
        p.clues[subject] = (recipients[0], "transferred")
    elif family in _CLUE_STATUS and subject in p.clues:
        p.clues[subject] = (p.clues[subject][0], _CLUE_STATUS[family])
    elif family == "rectification.issued":
        p.rects[subject] = (recipients, "open")
    elif family in _RECT_STATUS and subject in p.rects:
        p.rects[subject] = (p.rects[subject][0], _RECT_STATUS[family])
    elif family in (
        "receipt",
        "jointcheck.responded",
        "mechanism.established",
        "deadline.overdue",
        "meeting.held",
    ):
        _plain_payload_counts(p, family, sender, event)


def _plain_payload_counts(p: Projection, family: str, sender: str, event: dict[str, Any]) -> None:
    try:
        payload = parse_payload(str(event["type"]), event["data"])
    except (ContractError, KeyError, TypeError):
        return
    if isinstance(payload, Receipt):
        subject = str(event.get("subject", ""))
        clue = p.clues.get(subject)
        if payload.status == "refused" and clue is not None and clue[1] == "transferred":
            p.clues[subject] = (clue[0], "undeliverable")  # never seen by its receiver: not open
    elif isinstance(payload, JointCheckResponded) and payload.accepted and p.member(sender):
        p.counts[sender]["checks_joined"] += 1
    elif isinstance(payload, MechanismEstablished):
        for agency in payload.participants:
            if p.member(agency):
                p.counts[agency]["mechanisms"] += 1
    elif family == "deadline.overdue":
        responsible = getattr(payload, "responsible", "")
        if p.member(responsible):
            p.counts[responsible]["overdue"] += 1
    elif family == "meeting.held":
        chair = getattr(payload, "chair", "")
        if p.member(chair):
            p.counts[chair]["meetings_chaired"] += 1


def project(
    records: Iterable[AuditRecord], until: str | None = None, *, agencies: Sequence[str] | None = None
) -> Projection:
    """The projection of ``records`` (in log order), up to the receive time ``until``, with a
    row per agency of ``agencies`` (a registry's); without them, per agency the log itself
    shows to be a member (:func:`members_in`)."""
    records = list(records)
    p = Projection(tuple(agencies) if agencies is not None else members_in(records), until=until)
    limit = parse_time(until) if until else None
    for record in records:
        if limit is not None and parse_time(record.received_at) > limit:
            continue
        apply(p, record)
    return p


def members_in(records: Iterable[AuditRecord]) -> tuple[str, ...]:
    """The agencies an audit log itself shows to be members, in order of first appearance:
    the sender of record of every outbox decision (the authenticated owner of the outbox)
    and every agency an accepted event was delivered to."""
    seen: dict[str, None] = {}
    for record in records:
        if record.decision in ("accepted", "rejected") and record.sender:
            seen.setdefault(record.sender)
        if record.decision == "accepted":
            for agency in record.delivered_to:
                seen.setdefault(agency)
    return tuple(seen)
