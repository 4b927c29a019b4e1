"""The figures, table-driven: each lifecycle's events routed through a real router in
memory (signatures, sealing, rules; no Kafka), folded into a projection, and every non-zero
figure compared with what the agencies would count by hand."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jointbus.agents.routing import Router
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.projections import COLUMNS, Projection, apply
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER
from jointbus.streams.topics import outbox
from tests.samples import SAMPLES

NOW = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))

#: (sender, family, recipients, payload or None for the sample; "$n" in a payload value is
#: replaced by the event id of step n)
Step = tuple[str, str, list[str], dict[str, Any] | None]


class Bus:
    """A router in memory and the audit records it wrote, in order."""

    def __init__(self) -> None:
        self.router = Router(REGISTRY, RINGS[ROUTER], Rules())
        self.records: list[AuditRecord] = []
        self.offsets: Counter[str] = Counter()

    def send(self, subject: str, step: Step, ids: list[str | None]) -> AuditRecord:
        sender, family, to, payload = step
        data = {
            k: ids[int(v[1:])] if isinstance(v, str) and v.startswith("$") else v
            for k, v in (payload or SAMPLES[family]).items()
        }
        env = compose(
            keyring=RINGS[sender],
            registry=REGISTRY,
            event_type=family,
            subject=subject,
            recipients=to,
            payload=data,
            now=NOW,
        )
        topic = outbox(sender)
        routed = self.router.route(to_wire(env), topic, 0, self.offsets[topic], int(NOW.timestamp() * 1000))
        self.offsets[topic] += 1
        assert routed.record is not None
        self.records.append(routed.record)
        return routed.record


def figures(records: list[AuditRecord]) -> dict[tuple[str, str], int]:
    """Every non-zero (agency, column) figure of the projection of ``records``."""
    p = Projection(REGISTRY.agencies)
    for record in records:
        apply(p, record)
    return {(row["agency"], col): row[col] for row in p.rows() for col in COLUMNS if row[col]}


TRANSFER: Step = ("sc-zigong", "clue.transferred", ["cq-yongchuan"], None)
ACK: Step = ("cq-yongchuan", "clue.acknowledged", ["sc-zigong"], None)
ACCEPT: Step = ("cq-yongchuan", "clue.accepted", ["sc-zigong"], None)
RETURN: Step = ("cq-yongchuan", "clue.returned", ["sc-zigong"], None)
DISPOSE: Step = ("cq-yongchuan", "clue.disposition_reported", ["sc-zigong"], None)
REFUSE: Step = (
    "cq-yongchuan",
    "receipt",
    ["sc-zigong"],
    {
        "event_id": "$0",
        "event_type": "org.jointbus.clue.transferred.v2",
        "status": "refused",
        "reason": "seal_broken",
    },
)
SENT = {("sc-zigong", "clues_transferred"): 1, ("cq-yongchuan", "clues_received"): 1}

ISSUE: Step = ("sc-yibin", "rectification.issued", ["sc-zigong"], None)
DONE: Step = ("sc-zigong", "rectification.completion_reported", ["sc-yibin"], None)
VERIFY: Step = ("sc-yibin", "rectification.verified", ["sc-zigong"], None)
REOPEN: Step = ("sc-yibin", "rectification.reopened", ["sc-zigong"], None)

INVITE: Step = ("sc-yibin", "jointcheck.invited", ["sc-zigong", "sc-neijiang"], None)
JOIN: Step = ("sc-zigong", "jointcheck.responded", ["sc-yibin"], None)
DECLINE: Step = (
    "sc-neijiang",
    "jointcheck.responded",
    ["sc-yibin"],
    {"accepted": False, "decline_reason": "人手不足"},
)
FINDINGS: Step = ("sc-zigong", "jointcheck.findings_reported", ["sc-yibin"], None)


@pytest.mark.parametrize(
    ("subject", "steps", "expected"),
    [
        ("clue", [TRANSFER], {**SENT, ("cq-yongchuan", "clues_open"): 1}),
        ("clue", [TRANSFER, ACK], {**SENT, ("cq-yongchuan", "clues_open"): 1}),
        (
            "clue",
            [TRANSFER, ACK, ACCEPT, DISPOSE],
            {**SENT, ("cq-yongchuan", "clues_accepted"): 1, ("cq-yongchuan", "clues_disposed"): 1},
        ),
        ("clue", [TRANSFER, RETURN], {**SENT, ("cq-yongchuan", "clues_returned"): 1}),
        ("clue", [TRANSFER, REFUSE], SENT),  # never seen by its receiver: not open
        ("clue", [ACK], {("cq-yongchuan", "rejected"): 1}),  # nothing to acknowledge
        ("rectification", [ISSUE], {("sc-yibin", "rect_issued"): 1, ("sc-zigong", "rect_open"): 1}),
        (
            "rectification",
            [ISSUE, DONE, VERIFY],
            {
                ("sc-yibin", "rect_issued"): 1,
                ("sc-zigong", "rect_completed"): 1,
                ("sc-yibin", "rect_verified"): 1,
            },
        ),
        (
            "rectification",
            [ISSUE, DONE, REOPEN],
            {
                ("sc-yibin", "rect_issued"): 1,
                ("sc-zigong", "rect_completed"): 1,
                ("sc-yibin", "rect_reopened"): 1,
                ("sc-zigong", "rect_open"): 1,
            },
        ),
        (
            "jointcheck",
            [INVITE, JOIN, DECLINE, FINDINGS],
            {
                ("sc-yibin", "checks_convened"): 1,
                ("sc-zigong", "checks_joined"): 1,
                ("sc-zigong", "findings_reported"): 1,
            },
        ),
        (
            "meeting",
            [("cq-rongchang", "meeting.held", ["sc-zigong"], None)],
            {("cq-rongchang", "meetings_chaired"): 1},
        ),
        (
            "mechanism",
            [("cq-rongchang", "mechanism.established", ["sc-zigong"], None)],
            {("sc-zigong", "mechanisms"): 1, ("cq-yongchuan", "mechanisms"): 1},
        ),
        ("meeting", [("sc-zigong", "meeting.held", ["sc-luzhou"], None)], {("sc-zigong", "rejected"): 1}),
    ],
)
def test_figures_of_each_lifecycle(
    subject: str, steps: list[Step], expected: dict[tuple[str, str], int]
) -> None:
    """Who counts what: senders their sent steps, receivers what they received and hold open."""
    bus, ids = Bus(), list[str | None]()
    aggregate = f"{subject}/{uuid.uuid4()}"
    for step in steps:
        ids.append(bus.send(aggregate, step, ids).event_id)
    assert figures(bus.records) == expected


def test_overdue_counts_for_the_responsible_agency() -> None:
    """A deadline alert counts once, for the agency that owed the step."""
    bus = Bus()
    bus.send(f"clue/{uuid.uuid4()}", TRANSFER, [])
    alerts = [r.record for r in bus.router.overdue(NOW + timedelta(days=4)) if r.record is not None]
    assert [a.decision for a in alerts] == ["emitted"]
    assert figures(bus.records + alerts) == {
        **SENT,
        ("cq-yongchuan", "clues_open"): 1,
        ("cq-yongchuan", "overdue"): 1,
    }


def test_a_record_counts_once_however_often_it_is_read() -> None:
    """Records are folded by position: reading the log twice does not double a figure."""
    bus = Bus()
    bus.send(f"clue/{uuid.uuid4()}", TRANSFER, [])
    assert figures(bus.records * 2) == {**SENT, ("cq-yongchuan", "clues_open"): 1}


def test_figures_as_a_sheet_and_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """`--csv` is a sheet with a row per agency and the collaboration's row; `--json` is one
    JSON object per line; a mechanism of two agencies is one mechanism of the collaboration."""
    import csv
    import io
    import json

    from jointbus.views import print_projection

    bus = Bus()
    bus.send(f"mechanism/{uuid.uuid4()}", ("cq-rongchang", "mechanism.established", ["sc-zigong"], None), [])
    p = Projection(REGISTRY.agencies)
    for record in bus.records:
        apply(p, record)
    print_projection(p, as_json=False, as_csv=True, title="t")
    sheet = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert sheet[0][0] == "agency"
    assert [row[0] for row in sheet[1:]] == [*REGISTRY.agencies, "(collaboration)"]
    mechanisms = sheet[0].index("mechanisms")
    assert sum(int(row[mechanisms]) for row in sheet[1:-1]) == 2  # two participants
    assert sheet[-1][mechanisms] == "1"  # one mechanism
    print_projection(p, as_json=True, title="t")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["kind"] for line in lines] == ["agency"] * len(REGISTRY.agencies) + ["collaboration"]
    assert lines[-1]["mechanisms"] == 1
