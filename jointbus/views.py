"""Projections read from the audit topic and printed for people or machines."""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime

from jointbus import ui
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import parse_time
from jointbus.schemas.projections import COLUMNS, Projection, apply
from jointbus.schemas.records import AuditRecord, record_of
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.reader import read_topic
from jointbus.streams.security import AUDITOR, kafka_kwargs
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC

#: the first table shows the clue columns, the second every other kind's (a new kind's
#: columns appear there by themselves)
GROUPS = {
    "clues": tuple(c for c in COLUMNS if c.startswith("clues_")),
    "joint checks, rectifications, other": tuple(c for c in COLUMNS if not c.startswith("clues_")),
}
SHORT = {
    "clues_transferred": "clue→",
    "clues_received": "clue←",
    "clues_accepted": "acc",
    "clues_returned": "ret",
    "clues_disposed": "disp",
    "clues_open": "clue open",
    "checks_convened": "chk conv",
    "checks_joined": "chk join",
    "findings_reported": "findings",
    "rect_issued": "rect iss",
    "rect_completed": "rect done",
    "rect_verified": "rect ver",
    "rect_reopened": "reopen",
    "rect_open": "rect open",
    "overdue": "overdue",
    "mechanisms": "mech",
    "meetings_chaired": "chair",
    "bulletins_posted": "bulletins",
    "registry_proposals": "reg. prop.",
    "rejected": "rejected",
}


def in_period(record: AuditRecord, since: datetime | None, until: datetime | None) -> bool:
    """True when the record was received within [since, until] (either end open)."""
    moment = parse_time(record.received_at)
    return (since is None or moment >= since) and (until is None or moment <= until)


async def load_projection(
    settings: Settings,
    until: str | None = None,
    registry: Registry | None = None,
    since: str | None = None,
) -> Projection:
    """Fold the audit topic (records received between ``since`` and ``until``) into a
    projection with a row per agency of ``registry`` (default: the local keystore's, read
    once Kafka has answered, so that a refused connection is what an operator hears first)."""

    def empty() -> Projection:
        members = registry or keystore.load_registry(settings.keystore_dir)
        return Projection(members.agencies, until=until, since=since)

    start, end = (parse_time(since) if since else None), (parse_time(until) if until else None)
    auditor = kafka_kwargs(settings, AUDITOR)
    projection: Projection | None = None
    async for _, _, value in read_topic(settings.bootstrap_servers, AUDIT_TOPIC, **auditor):
        projection = projection or empty()
        try:
            record = record_of(value)
        except ContractError:  # bytes that are not a record change nothing
            continue
        if in_period(record, start, end):
            apply(projection, record)
    return projection or empty()


def print_projection(projection: Projection, *, as_json: bool, title: str, as_csv: bool = False) -> None:
    """Per-agency tables and the collaboration's totals; ``as_json``: JSON lines, one per
    agency (``"kind": "agency"``) then one of the whole collaboration; ``as_csv``: a sheet."""
    rows = projection.rows()
    totals = projection.collaboration()
    period = {"since": projection.since, "until": projection.until}
    if as_json:
        for row in rows:
            ui.json_line({"kind": "agency", **row})
        ui.json_line({"kind": "collaboration", "records": projection.records, **period, **totals})
        for pair in projection.pairs():
            ui.json_line({"kind": "pair", **pair})
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["agency", *COLUMNS])
        writer.writerows([[r["agency"], *(r[c] for c in COLUMNS)] for r in rows])
        writer.writerow(["(collaboration)", *(totals[c] for c in COLUMNS)])
        sys.stdout.write(out.getvalue())
        return
    for part, columns in GROUPS.items():
        ui.table(
            f"{title}: {part} ({projection.records} {projection.unit})",
            ["agency", *(SHORT.get(c, c.replace("_", " ")) for c in columns)],
            [
                *([r["agency"], *(r[c] for c in columns)] for r in rows),
                ["(collaboration)", *(totals[c] for c in columns)],
            ],
        )
    ui.say(
        "the (collaboration) row counts each event once: a mechanism of three agencies is one "
        "mechanism, while the agency rows show each agency's part"
    )
    print_pairs(projection)


#: pairs shown in the table of `status` (all of them with --json)
PAIRS_SHOWN = 20


def print_pairs(projection: Projection) -> None:
    """Who holds whom busy: open items per sender → recipient pair, and the events the
    router refused as ``too_many_open`` (a flood), the most refused first."""
    pairs = projection.pairs()
    if not pairs:
        return
    more = f" (the {PAIRS_SHOWN} busiest of {len(pairs)})" if len(pairs) > PAIRS_SHOWN else ""
    ui.table(
        f"who holds whom busy: open items, and floods refused as too_many_open{more}",
        ["sender", "recipient", "open", "too many open"],
        [[p["sender"], p["recipient"], p["open"], p["too_many_open"]] for p in pairs[:PAIRS_SHOWN]],
    )
