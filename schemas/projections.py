"""Projections: the figures the agencies count, rebuilt from audit records alone.

``jointbus status`` shows them live and ``jointbus audit replay`` rebuilds them from
history; both fold the same function over the same records, so they cannot disagree.
Each aggregate kind says which columns it adds and how its events count
(``schemas/families/``). Rows are the registry's member agencies, in registry order: a new
member gets its row the moment the registry names it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jointbus.schemas.catalog import KINDS, family_of, kind_named, kind_of
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import Fact
from jointbus.schemas.ids import parse_time
from jointbus.schemas.records import AuditRecord

__all__ = ["COLUMNS", "Item", "Projection", "apply", "members_in", "project"]

#: every figure column, in the kinds' order, then the bus's own
COLUMNS: tuple[str, ...] = (*(c for kind in KINDS for c in kind.columns), "rejected")


@dataclass
class Item:
    """An item followed for its open figure: its kind, who holds it, its status."""

    kind: str
    holders: list[str]
    status: str
    #: the agency that opened it (its sender), "" when unknown
    by: str = ""


@dataclass
class Projection:
    """Per-agency counters and the open items behind them, for the member agencies
    ``agencies`` (``Registry.agencies``): only members are counted, one row each. Reading the
    counts of a non-member gives zeros."""

    agencies: tuple[str, ...]
    counts: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    items: dict[str, Item] = field(default_factory=dict)  # subject -> item
    #: collaboration-level figures: each event once (a mechanism of three agencies is one)
    totals: Counter[str] = field(default_factory=Counter)
    since: str | None = None
    seen: set[str] = field(default_factory=set)
    #: refusals ``too_many_open`` by (sender, recipient): who flooded whom
    flooded: Counter[tuple[str, str]] = field(default_factory=Counter)
    records: int = 0
    until: str | None = None
    unit: str = "audit records"
    _members: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._members = frozenset(self.agencies)

    def member(self, agency: str) -> bool:
        """True for a member agency (one that has a row)."""
        return agency in self._members

    # the Tally a kind's projection handler writes to
    def count(self, agency: str, column: str, n: int = 1) -> None:
        if self.member(agency):
            self.counts[agency][column] += n

    def total(self, figure: str, n: int = 1) -> None:
        self.totals[figure] += n

    def track(self, subject: str, kind: str, holders: tuple[str, ...], status: str, by: str = "") -> None:
        self.items[subject] = Item(kind, list(holders), status, by)

    def restatus(self, subject: str, status: str) -> None:
        item = self.items.get(subject)
        if item is not None:
            item.status = status

    def refused(self, subject: str, event_type: str) -> None:
        """A delivery of ``event_type`` was refused: the item moves as its kind says."""
        item = self.items.get(subject)
        kind = kind_named(item.kind) if item is not None else None
        moved = kind.after_refusal(family_of(event_type), item.status) if item and kind else None
        if item is not None and moved is not None:
            item.status = moved

    def collaboration(self) -> dict[str, int]:
        """The figures of the collaboration as a whole: every column counted once per event
        (not summed over agencies), open items counted once."""
        figures = {col: self.totals[col] for col in COLUMNS}
        for kind in KINDS:
            if kind.open_column:
                figures[kind.open_column] = sum(
                    1
                    for item in self.items.values()
                    if item.kind == kind.name and item.status in kind.open_statuses
                )
        figures["clues_received"] = figures["clues_transferred"]
        return figures

    def pairs(self) -> list[dict[str, Any]]:
        """Who holds whom busy: per (sender, recipient) pair, the items the sender opened that
        are still open on the recipient and the events refused ``too_many_open`` (a flood is
        the sender's doing, never the recipient's), most refused first."""
        held: Counter[tuple[str, str]] = Counter()
        for item in self.items.values():
            kind = kind_named(item.kind)
            if item.by and kind is not None and item.status in kind.open_statuses:
                for holder in item.holders:
                    held[(item.by, holder)] += 1
        keys = sorted(set(held) | set(self.flooded), key=lambda p: (-self.flooded[p], -held[p], p))
        return [
            {"sender": s, "recipient": r, "open": held[(s, r)], "too_many_open": self.flooded[(s, r)]}
            for s, r in keys
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One row per agency with every column (open items computed from the items)."""
        open_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for item in self.items.values():
            kind = kind_named(item.kind)
            if kind is not None and kind.open_column and item.status in kind.open_statuses:
                for holder in item.holders:
                    open_counts[holder][kind.open_column] += 1
        out = []
        for agency in self.agencies:
            c = self.counts[agency]
            for kind in KINDS:
                if kind.open_column:
                    c[kind.open_column] = open_counts[agency][kind.open_column]
            out.append({"agency": agency, **{col: c[col] for col in COLUMNS}})
        return out


def apply(p: Projection, record: AuditRecord) -> None:
    """Fold one audit record into the projection (duplicates by position are ignored)."""
    if record.position in p.seen:
        return
    p.seen.add(record.position)
    p.records += 1
    sender = record.sender or ""
    if record.decision == "rejected":
        p.count(sender, "rejected")
        p.total("rejected")
        if record.reason == Reason.TOO_MANY_OPEN:
            for recipient in _recipients(record.event or {}):
                p.flooded[(sender, recipient)] += 1
        return
    event = record.event or {}
    # total on any record (an export, a log of another bus): a field of another type than
    # the envelope's counts as absent instead of being iterated or converted
    kind_name, subject, recipients = event.get("type"), event.get("subject"), event.get("recipients")
    family = family_of(kind_name) if isinstance(kind_name, str) else ""
    kind = kind_of(family)
    if kind is None or kind.project is None:
        return
    if not (isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)):
        recipients = []
    subject = subject if isinstance(subject, str) else ""
    kind.project(p, Fact(family, sender, subject, tuple(recipients), event))


def _recipients(event: dict[str, Any]) -> list[str]:
    """The event's recipients when they are a list of strings (any record is read)."""
    found = event.get("recipients")
    return found if isinstance(found, list) and all(isinstance(r, str) for r in found) else []


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
