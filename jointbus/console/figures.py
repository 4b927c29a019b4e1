"""What each page shows, computed from the console's model of the log (no I/O here)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jointbus.console.state import WHOLE, Entry, LogState
from jointbus.schemas.catalog import KINDS, kind_named
from jointbus.schemas.deadlines import china_date
from jointbus.schemas.projections import COLUMNS, Projection

#: the collaboration figures drawn over time on the overview
SERIES = ("checks_convened", "rect_completed", "mechanisms")
#: where a transferred clue ended, as the clue-flow page groups it
OUTCOMES = {"accepted": "accepted", "returned": "returned", "disposed": "disposed"}
#: age buckets of open items, in days (the last one open-ended)
AGES = ((0, 1), (1, 7), (7, 30), (30, None))


def overview(projection: Projection) -> dict[str, Any]:
    """The figures of ``jointbus status --json``: a row per agency and the collaboration."""
    return {
        "records": projection.records,
        "since": projection.since,
        "until": projection.until,
        "rows": projection.rows(),
        "totals": projection.collaboration(),
        "pairs": projection.pairs(),
    }


def series(state: LogState, since: str | None, until: str | None) -> dict[str, Any]:
    """Per China Standard Time day, how many events added to each of ``SERIES`` (each once)."""
    days: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for column in SERIES:
        for entry in state.making((WHOLE, column), since, until):
            days[china_date(entry.moment).isoformat()][column] += 1
    dates = sorted(days)
    return {"dates": dates, "series": {c: [days[d][c] for d in dates] for c in SERIES}}


def contributors(
    state: LogState, agency: str, column: str, since: str | None, until: str | None
) -> list[Entry]:
    """The records of the period that make up one figure (``agency`` WHOLE: the collaboration's)."""
    if column == "clues_received" and agency == WHOLE:
        column = "clues_transferred"  # the collaboration receives each transferred clue once
    return state.making((agency, column), since, until)


def open_subjects(projection: Projection, agency: str, column: str) -> list[str]:
    """The items behind an open-items figure (``clues_open``, ``rect_open``)."""
    found = []
    for subject, item in projection.items.items():
        kind = kind_named(item.kind)
        if kind is None or kind.open_column != column or item.status not in kind.open_statuses:
            continue
        if agency == WHOLE or agency in item.holders:
            found.append(subject)
    return found


def is_open_column(column: str) -> bool:
    """True for a figure that counts items still open rather than events."""
    return any(kind.open_column == column for kind in KINDS)


@dataclass(frozen=True)
class Transfer:
    """A clue transferred from one agency to another, and where it stands."""

    subject: str
    source: str
    target: str
    outcome: str


def transfers(projection: Projection, entries: list[Entry]) -> list[Transfer]:
    """Every accepted clue transfer of the period, with its item's status as its outcome."""
    found = []
    for entry in entries:
        if entry.family == "clue.transferred" and entry.decision == "accepted":
            item = projection.items.get(entry.subject)
            status = item.status if item is not None else "transferred"
            for target in entry.recipients:
                found.append(Transfer(entry.subject, entry.sender, target, OUTCOMES.get(status, "open")))
    return found


def flow(projection: Projection, entries: list[Entry]) -> dict[str, Any]:
    """The clue-flow chart's data: one link per (from, to) pair with its number of clues,
    and per receiving agency its clues by outcome (accepted, returned, disposed, open)."""
    pairs: Counter[tuple[str, str]] = Counter()
    outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for t in transfers(projection, entries):
        pairs[(t.source, t.target)] += 1
        outcomes[t.target][t.outcome] += 1
    return {
        "links": [{"source": s, "target": t, "value": n} for (s, t), n in sorted(pairs.items())],
        "outcomes": {agency: dict(counts) for agency, counts in sorted(outcomes.items())},
        "kinds": ["accepted", "returned", "disposed", "open"],
    }


@dataclass(frozen=True)
class OpenItem:
    """An item still open: who holds it, since when, whether an overdue alert named it."""

    subject: str
    kind: str
    status: str
    holders: tuple[str, ...]
    opened: str
    age_days: int
    overdue: bool


def age_bucket(days: int) -> str:
    """The label of the age bucket ``days`` falls in (``0–1``, ``1–7``, ``7–30``, ``30+``)."""
    for low, high in AGES:
        if high is None or days < high:
            return f"{low}–{high}" if high is not None else f"{low}+"
    raise AssertionError("AGES ends open")


def deadlines(state: LogState, projection: Projection, entries: list[Entry], now: datetime) -> dict[str, Any]:
    """Open items by agency and age (days since their first event, at ``now``), the
    overdue alerts of the period, and per agency how many of each."""
    alerted = {e.overdue.aggregate for e in entries if e.overdue is not None}
    items = []
    for subject, item in projection.items.items():
        kind = kind_named(item.kind)
        followed = state.by_subject.get(subject)
        if kind is None or item.status not in kind.open_statuses or not followed:
            continue  # (an item under no subject the log names has no history to age by)
        first = state.entries[followed[0]]
        age = max(0, (now - first.moment).days)
        items.append(
            OpenItem(
                subject,
                item.kind,
                item.status,
                tuple(item.holders),
                first.received_at,
                age,
                subject in alerted,
            )
        )
    items.sort(key=lambda i: (-i.age_days, i.opened))
    buckets = [age_bucket(low) for low, _ in AGES]
    table: dict[str, Counter[str]] = {agency: Counter() for agency in state.registry.agencies}
    for open_item in items:
        for holder in open_item.holders:
            if holder in table:
                table[holder][age_bucket(open_item.age_days)] += 1
                table[holder]["overdue"] += open_item.overdue
    alerts = [e for e in entries if e.overdue is not None]
    return {"items": items, "buckets": buckets, "table": table, "alerts": alerts}


def column_names() -> tuple[str, ...]:
    """Every figure column, in ``status`` order."""
    return COLUMNS
