"""The console's model of the audit log: every decision as a slim entry, the figures of
the whole log kept up to date record by record, and which records make up each figure.

The figures are ``schemas.projections.apply`` folded over the records, exactly as
``jointbus status`` and ``audit replay`` fold them; :class:`Attributed` only notes, while
it folds, which record added to which figure, so every number can name its events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jointbus.schemas.catalog import family_of
from jointbus.schemas.envelope import SEALED_CONTENT_TYPE
from jointbus.schemas.errors import ContractError
from jointbus.schemas.families.notice import ItemOverdue
from jointbus.schemas.family import Fact
from jointbus.schemas.ids import parse_time
from jointbus.schemas.projections import Projection, apply
from jointbus.schemas.records import AuditRecord, record_of
from jointbus.schemas.registry import Registry

#: the agency name under which a collaboration figure (each event once) is attributed
WHOLE = ""


@dataclass
class Attributed(Projection):
    """A projection that remembers, for the record being folded, each figure it added to
    (``(agency, column)``; ``(WHOLE, column)`` for a collaboration figure)."""

    added: list[tuple[str, str]] = field(default_factory=list)

    def count(self, agency: str, column: str, n: int = 1) -> None:
        if self.member(agency):
            self.added += [(agency, column)] * n
        super().count(agency, column, n)

    def total(self, figure: str, n: int = 1) -> None:
        self.added += [(WHOLE, figure)] * n
        super().total(figure, n)


@dataclass(frozen=True, slots=True)
class Overdue:
    """A ``deadline.overdue`` alert: which item, what deadline, whose."""

    aggregate: str
    what: str
    deadline: str
    responsible: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One decision of the log as the console shows it: who, when, which state, never what
    an event says (no payload is kept)."""

    offset: int
    position: str
    received_at: str
    decision: str
    reason: str | None
    detail: str
    event_id: str | None
    type: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    delivered_to: tuple[str, ...]
    causation: str | None
    correlation: str | None
    notice: str | None
    sealed: bool
    added: tuple[tuple[str, str], ...]
    overdue: Overdue | None

    @property
    def family(self) -> str:
        return family_of(self.type) if self.type else ""

    @property
    def moment(self) -> datetime:
        return parse_time(self.received_at)


def entry_of(offset: int, record: AuditRecord, added: list[tuple[str, str]]) -> Entry:
    """The slim entry of an audit record (``added``: the figures it made up).

    Total on any record: a rejected event is kept as it was sent, so any of its fields may
    hold any JSON value; each is shown only when it has the type the envelope gives it
    (otherwise blank), and nothing here iterates or converts what it has not checked.
    """
    event = record.event or {}
    kind = text_field(event, "type") or ""
    subject = text_field(event, "subject") or ""
    recipients = recipients_of(event)
    overdue = None
    if family_of(kind) == "deadline.overdue" and record.decision in ("accepted", "emitted"):
        payload = Fact("deadline.overdue", record.sender or "", subject, recipients, event).payload()
        if isinstance(payload, ItemOverdue):
            overdue = Overdue(
                payload.aggregate, payload.what, payload.deadline.isoformat(), payload.responsible
            )
    return Entry(
        offset=offset,
        position=record.position,
        received_at=record.received_at,
        decision=record.decision,
        reason=record.reason,
        detail=record.detail,
        event_id=record.event_id,
        type=kind,
        subject=subject,
        sender=record.sender or "",
        recipients=recipients,
        delivered_to=tuple(record.delivered_to),
        causation=text_field(event, "causationid"),
        correlation=text_field(event, "correlationid"),
        notice=text_field(record.notice or {}, "type"),
        sealed=event.get("datacontenttype") == SEALED_CONTENT_TYPE,
        added=tuple(added),
        overdue=overdue,
    )


def text_field(obj: Mapping[str, Any], name: str) -> str | None:
    """``obj[name]`` when it is a string, else None (absent, or of another type)."""
    value = obj.get(name)
    return value if isinstance(value, str) else None


def recipients_of(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The event's recipients when they are a list of strings, else none."""
    value = event.get("recipients")
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return tuple(value)
    return ()


class LogState:
    """The audit log as read so far: entries in log order, the figures of the whole log,
    and indexes by event id and subject. ``add`` folds one more record; ``changed`` wakes
    whoever waits for the log to grow (the pages' live updates)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.entries: list[Entry] = []
        self.raw: list[bytes] = []  # the records' bytes, to fold a period again
        self.projection = Attributed(registry.agencies)
        self.by_event: dict[str, int] = {}
        self.by_subject: defaultdict[str, list[int]] = defaultdict(list)
        self.caused: defaultdict[str, list[int]] = defaultdict(list)
        #: (agency or WHOLE, column) -> the entries that added to that figure, in log order
        self.by_figure: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        self.next_offset = 0
        self.version = 0
        self._changed = asyncio.Condition()

    def add(self, offset: int, value: bytes) -> None:
        """Fold the record at ``offset`` (a repeat of a logged position, or bytes that are
        not a record, change nothing: as in ``audit replay``). Total: whatever a record's
        ``event`` holds, it becomes an entry (``entry_of``)."""
        self.next_offset = offset + 1
        try:
            record = record_of(value)
        except ContractError:
            return
        if record.position in self.projection.seen:
            return
        self.projection.added = []
        apply(self.projection, record)
        entry = entry_of(offset, record, self.projection.added)
        at = len(self.entries)
        self.entries.append(entry)
        self.raw.append(value)
        if entry.event_id:
            self.by_event.setdefault(entry.event_id, at)
        if entry.subject:
            self.by_subject[entry.subject].append(at)
        if entry.causation and entry.causation != entry.event_id:
            self.caused[entry.causation].append(at)
        for figure in dict.fromkeys(entry.added):
            self.by_figure[figure].append(at)

    async def grew(self) -> None:
        """Tell the waiters the log grew."""
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def wait_beyond(self, version: int, seconds: float) -> int:
        """The version once it is past ``version`` (or as it is after ``seconds``)."""
        async with self._changed:
            if self.version <= version:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), seconds)
            return self.version

    def period(self, since: str | None, until: str | None) -> tuple[Projection, list[Entry]]:
        """The figures of the records received in [since, until] (either end open) and
        those records: the whole log's when no period is given, else folded again with the
        same ``apply`` as ``jointbus status --since/--until``."""
        if since is None and until is None:
            return self.projection, self.entries
        inside = window(since, until)
        projection = Projection(self.registry.agencies, since=since, until=until)
        chosen = []
        for entry, value in zip(self.entries, self.raw, strict=True):
            if inside(entry):
                apply(projection, record_of(value))
                chosen.append(entry)
        return projection, chosen

    def making(self, figure: tuple[str, str], since: str | None, until: str | None) -> list[Entry]:
        """The entries of the period that added to ``figure`` ((agency or WHOLE, column))."""
        inside = window(since, until)
        return [e for e in (self.entries[i] for i in self.by_figure.get(figure, ())) if inside(e)]


def window(since: str | None, until: str | None) -> Callable[[Entry], bool]:
    """Whether an entry was received in [since, until] (either end open), as ``views.in_period``."""
    start, end = (parse_time(since) if since else None), (parse_time(until) if until else None)
    if start is None and end is None:
        return lambda _: True
    return lambda e: (start is None or e.moment >= start) and (end is None or e.moment <= end)
