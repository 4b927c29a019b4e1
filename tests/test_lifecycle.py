"""The lifecycle rules on their own, table-driven: each step of each aggregate, who may take
it, and what state it leaves (no Kafka, no signatures beyond building the envelopes)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from jointbus.schemas.families.clue import ClueState
from jointbus.schemas.lifecycle import Aggregate, due_at, overdue_items
from tests.rules import NOW, decide
from tests.samples import SAMPLES

Step = tuple[str, str, list[str], dict[str, Any] | None]  # family, sender, recipients, payload


def run(subject: str, steps: list[Step], states: dict[str, Aggregate] | None = None) -> list[str | None]:
    """Apply ``steps`` to one aggregate in order; the reason of each (None = accepted)."""
    states = states if states is not None else {}
    reasons: list[str | None] = []
    for family, sender, to, payload in steps:
        state, decision = decide(states.get(subject), sender, family, to, subject, payload, lookup=states.get)
        if state is not None:
            states[subject] = state
        reasons.append(decision.reason)
    return reasons


CLUE = [
    ("clue.transferred", "sc-zigong", ["cq-yongchuan"], None),
    ("clue.acknowledged", "cq-yongchuan", ["sc-zigong"], None),
    ("clue.accepted", "cq-yongchuan", ["sc-zigong"], None),
    ("clue.disposition_reported", "cq-yongchuan", ["sc-zigong"], None),
]


@pytest.mark.parametrize(
    ("steps", "reasons"),
    [
        (CLUE, [None, None, None, None]),
        (CLUE[:1] + CLUE[2:], [None, None, None]),  # accepting also acknowledges
        ([*CLUE[:1], ("clue.returned", "cq-yongchuan", ["sc-zigong"], None)], [None, None]),
        (CLUE[:1] + CLUE[3:], [None, "bad_transition"]),  # disposition before acceptance
        ([*CLUE[:1], ("clue.accepted", "sc-luzhou", ["sc-zigong"], None)], [None, "not_authorized"]),
        ([*CLUE[:1], ("clue.accepted", "cq-yongchuan", ["sc-luzhou"], None)], [None, "not_authorized"]),
        (CLUE[:1] * 2, [None, "bad_transition"]),  # transferred twice
        ([("clue.transferred", "sc-zigong", ["cq-yongchuan", "sc-luzhou"], None)], ["bad_transition"]),
        (CLUE[1:2], ["bad_transition"]),  # no clue to acknowledge
    ],
)
def test_clue_steps(steps: list[Step], reasons: list[str | None]) -> None:
    """Transfer → acknowledge → accept/return → disposition, by the receiver, to the sender."""
    assert run(f"clue/{uuid.uuid4()}", steps) == reasons


ISSUE = ("rectification.issued", "sc-yibin", ["sc-zigong"], None)
PROGRESS = ("rectification.progress_reported", "sc-zigong", ["sc-yibin"], None)
DONE = ("rectification.completion_reported", "sc-zigong", ["sc-yibin"], None)
VERIFY = ("rectification.verified", "sc-yibin", ["sc-zigong"], None)
REOPEN = ("rectification.reopened", "sc-yibin", ["sc-zigong"], None)


@pytest.mark.parametrize(
    ("steps", "reasons"),
    [
        ([ISSUE, PROGRESS, DONE, VERIFY], [None, None, None, None]),
        ([ISSUE, DONE, REOPEN, DONE, VERIFY], [None, None, None, None, None]),
        ([ISSUE, VERIFY], [None, "bad_transition"]),  # nothing completed yet
        ([ISSUE, ("rectification.verified", "sc-zigong", ["sc-yibin"], None)], [None, "not_authorized"]),
        (
            [ISSUE, ("rectification.progress_reported", "sc-yibin", ["sc-zigong"], None)],
            [None, "not_authorized"],
        ),
        (
            [ISSUE, ("rectification.progress_reported", "sc-zigong", ["sc-luzhou"], None)],
            [None, "not_authorized"],
        ),
        ([ISSUE, ISSUE], [None, "bad_transition"]),
        # 20:18 UTC on 25 Nov is 04:18 on 26 Nov in China: "today" is the 26th there
        ([(*ISSUE[:3], {**SAMPLES["rectification.issued"], "deadline": "2026-11-26"})], [None]),
        ([(*ISSUE[:3], {**SAMPLES["rectification.issued"], "deadline": "2026-11-25"})], ["bad_transition"]),
    ],
)
def test_rectification_steps(steps: list[Step], reasons: list[str | None]) -> None:
    """Issue → progress → completion → verification (销号) or reopening; deadlines ahead."""
    assert run(f"rectification/{uuid.uuid4()}", steps) == reasons


INVITE = ("jointcheck.invited", "sc-yibin", ["sc-zigong", "sc-neijiang"], None)
JOIN = ("jointcheck.responded", "sc-zigong", ["sc-yibin"], None)
DECLINE = (
    "jointcheck.responded",
    "sc-neijiang",
    ["sc-yibin"],
    {"accepted": False, "decline_reason": "人手不足"},
)
FINDINGS = ("jointcheck.findings_reported", "sc-zigong", ["sc-yibin"], None)


@pytest.mark.parametrize(
    ("steps", "reasons"),
    [
        ([INVITE, JOIN, DECLINE, FINDINGS], [None, None, None, None]),
        ([INVITE, JOIN, JOIN], [None, None, "bad_transition"]),  # responded twice
        ([INVITE, ("jointcheck.responded", "cq-dazu", ["sc-yibin"], None)], [None, "not_authorized"]),
        (
            [INVITE, DECLINE, ("jointcheck.findings_reported", "sc-neijiang", ["sc-yibin"], None)],
            [None, None, "not_authorized"],
        ),
        (
            [INVITE, ("jointcheck.responded", "sc-zigong", ["sc-yibin"], {"accepted": True})],
            [None, "bad_transition"],
        ),
    ],
)
def test_joint_check_steps(steps: list[Step], reasons: list[str | None]) -> None:
    """Invite → accept (naming staff) or decline (with a reason) → findings by participants."""
    assert run(f"jointcheck/{uuid.uuid4()}", steps) == reasons


def test_only_the_registrys_chair_records_meetings_and_mechanisms() -> None:
    """The chair is the registry's (cq-rongchang here; it passes by a governance change):
    only it records a joint meeting naming itself, or a mechanism."""
    states: dict[str, Aggregate] = {}
    others = ["sc-zigong"]
    meeting = {**SAMPLES["meeting.held"], "chair": "sc-yibin"}
    assert run("meeting/m1", [("meeting.held", "sc-yibin", others, meeting)], states) == ["not_authorized"]
    assert run("meeting/m2", [("meeting.held", "cq-rongchang", others, None)], states) == [None]
    assert run("meeting/m2", [("meeting.held", "cq-rongchang", others, None)], states) == ["bad_transition"]
    # mechanisms are the joint meeting's: recorded by its chair, nobody else credits others
    assert run("mechanism/a", [("mechanism.established", "sc-zigong", others, None)], states) == [
        "not_authorized"
    ]
    assert run("mechanism/b", [("mechanism.established", "cq-rongchang", others, None)], states) == [None]


def test_receipts_and_refusals() -> None:
    """A receipt comes from a recipient, to the sender; a refusal makes a clue undeliverable."""
    subject, states = f"clue/{uuid.uuid4()}", dict[str, Aggregate]()
    run(subject, CLUE[:1], states)
    (transfer,) = states[subject].accepted
    transfer_id = transfer.id
    refusal = {
        "event_id": transfer_id,
        "event_type": "org.jointbus.clue.transferred.v2",
        "status": "refused",
        "reason": "seal_broken",
    }
    assert run(subject, [("receipt", "sc-luzhou", ["sc-zigong"], refusal)], states) == ["not_authorized"]
    assert run(subject, [("receipt", "cq-yongchuan", ["sc-luzhou"], refusal)], states) == ["not_authorized"]
    assert run(subject, [("receipt", "cq-yongchuan", ["sc-zigong"], refusal)], states) == [None]
    state = states[subject].state
    assert isinstance(state, ClueState)
    assert state.status == "undeliverable"
    assert due_at(states[subject]) is None  # no acknowledgement can be owed for it
    assert run(subject, [("receipt", "cq-yongchuan", ["sc-zigong"], refusal)], states) == ["bad_transition"]


def test_overdue_items_name_the_responsible_party() -> None:
    """An unacknowledged clue and a rectification past its date, each named once."""
    clue, rect, states = f"clue/{uuid.uuid4()}", f"rectification/{uuid.uuid4()}", dict[str, Aggregate]()
    run(clue, CLUE[:1], states)
    run(rect, [ISSUE], states)
    later = NOW + timedelta(days=400)
    (clue_item,) = overdue_items(states[clue], later)
    (rect_item,) = overdue_items(states[rect], later)
    assert (clue_item.what, clue_item.responsible) == ("clue_not_acknowledged", "cq-yongchuan")
    assert (rect_item.what, rect_item.responsible) == ("rectification_past_deadline", "sc-zigong")
    assert overdue_items(states[clue], NOW) == []
