"""Completeness: every outbox record has exactly one decision leaf, and `jointbus audit
verify` names the outbox position whose decision is missing."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import given
from hypothesis import strategies as st

from jointbus.agents.routing import Router
from jointbus.audit.completeness import OutboxRow, check_complete
from jointbus.audit.errors import VerificationError
from jointbus.audit.verifier import Verifier
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import format_time
from jointbus.schemas.keys import new_federation
from jointbus.schemas.leaves import LeafRule, OffsetRuns
from jointbus.schemas.ledger import Ledger
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord, input_digests
from jointbus.schemas.registry import ROUTER
from jointbus.streams.broker import LocalBroker
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.conftest import _broker
from tests.harness import jointbus_cli, make_federation, read_outbox
from tests.samples import SAMPLES


@pytest.fixture(scope="module")
def lonely_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of its own: its audit log is written by hand, one decision left out."""
    yield from _broker(tmp_path_factory, "completeness-kafka")


@pytest.mark.broker
async def test_removed_decision_is_named_by_verify(lonely_kafka: LocalBroker, tmp_path: Path) -> None:
    """An audit log from which one decision record was removed (it is never written): verify
    exits 1 with `missing_decision` and the outbox position, without a traceback."""
    bootstrap = lonely_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
        for _ in range(12):
            subject = f"rectification/{uuid.uuid4()}"
            await pub.publish("rectification.issued", subject, ["cq-dazu"], SAMPLES["rectification.issued"])
    records = sorted(await read_outbox(bootstrap, outbox("sc-zigong")))
    by_partition: dict[int, list[tuple[int, int, bytes, int, bool]]] = {}
    for record in records:
        by_partition.setdefault(record[0], []).append(record)
    partition = max(by_partition, key=lambda p: len(by_partition[p]))
    assert len(by_partition[partition]) >= 3, "the victim partition needs a record after the removed one"
    removed = by_partition[partition][1]
    router = Router(registry, rings[ROUTER], Rules())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for part, offset, value, ts, appended in records:
            routed = router.route(value, outbox("sc-zigong"), part, offset, ts, appended=appended)
            if (part, offset) == removed[:2]:
                router.leaves -= 1  # never written: the leaves after it keep contiguous numbers
                continue  # the decision that goes missing
            for out in routed.outputs:
                if out.topic == AUDIT_TOPIC:
                    await producer.send_and_wait(AUDIT_TOPIC, out.value, key=out.key)
    finally:
        await producer.stop()
    position = f"{outbox('sc-zigong')}:{partition}:{removed[1]}"
    done = await jointbus_cli(tmp_path, bootstrap, "audit", "verify", "--grace", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[missing_decision]" in done.stderr
    assert position in done.stderr
    assert "Traceback" not in done.stderr


NO_DIGESTS: frozenset[str] = frozenset()


def test_undecided_tail_record_is_missing_after_the_grace_period() -> None:
    """The last record of a partition, undecided: pending while young, missing when old."""
    now_ms = 1_800_000_000_000
    decided = {"jointbus.outbox.sc-yibin:0": {0, 1, 2}}
    young = {
        "jointbus.outbox.sc-yibin:0": [
            OutboxRow(0, 0, True, NO_DIGESTS),
            OutboxRow(1, 0, True, NO_DIGESTS),
            OutboxRow(2, 0, True, NO_DIGESTS),
            OutboxRow(3, now_ms - 5_000, True, NO_DIGESTS),
        ]
    }
    assert check_complete(decided, young, now_ms=now_ms, grace_ms=60_000).pending == 1
    old = {
        "jointbus.outbox.sc-yibin:0": [
            OutboxRow(0, 0, True, NO_DIGESTS),
            OutboxRow(1, 0, True, NO_DIGESTS),
            OutboxRow(2, 0, True, NO_DIGESTS),
            OutboxRow(3, now_ms - int(timedelta(minutes=2).total_seconds() * 1000), True, NO_DIGESTS),
        ]
    }
    with pytest.raises(VerificationError) as info:
        check_complete(decided, old, now_ms=now_ms, grace_ms=60_000)
    assert info.value.why == "missing_decision"
    assert "jointbus.outbox.sc-yibin:0:3" in info.value.message
    stamped_by_producer = {
        "jointbus.outbox.sc-yibin:0": [OutboxRow(0, 0, True, NO_DIGESTS), OutboxRow(1, 0, False, NO_DIGESTS)]
    }
    with pytest.raises(VerificationError) as info:
        check_complete(decided, stamped_by_producer, now_ms=now_ms)
    assert info.value.why == "untrusted_time"
    assert "jointbus.outbox.sc-yibin:0:1" in info.value.message


@given(st.lists(st.integers(0, 200), max_size=300))
def test_offset_runs_behave_as_a_set(offsets: list[int]) -> None:
    """The compact run set the verifier and the leaf rule keep answers as a plain set would."""
    runs, plain = OffsetRuns(), set()
    for offset in offsets:
        runs.add(offset)
        plain.add(offset)
    assert sorted(runs) == sorted(plain)
    assert all((x in runs) == (x in plain) for x in range(-1, 202))
    assert all(e < s for e, s in zip(runs.ends, runs.starts[1:], strict=False))  # disjoint, merged


def test_leaf_rule_admits_the_first_record_of_each_position_in_any_order() -> None:
    """Positions arriving out of order (a late write) are still leaves once, never twice."""
    rule = LeafRule()
    keys = [
        b"jointbus.outbox.sc-yibin:2:134",
        b"jointbus.outbox.sc-yibin:2:125",
        b"deadline:clue/x:a:2026-11-26",
    ]
    assert [rule.admit(k) for k in keys] == [True, True, True]
    assert [rule.admit(k) for k in keys] == [False, False, False]


def _honest(now_ms: int) -> tuple[Any, Any, bytes, AuditRecord]:
    """One honest decision by the real router code about one outbox record."""
    registry, rings = new_federation(datetime.fromtimestamp(now_ms / 1000, tz=UTC) - timedelta(days=1))
    wire = to_wire(
        compose(
            keyring=rings["sc-zigong"],
            registry=registry,
            event_type="rectification.issued",
            subject=f"rectification/{uuid.uuid4()}",
            recipients=["cq-dazu"],
            payload=SAMPLES["rectification.issued"],
            now=datetime.fromtimestamp(now_ms / 1000, tz=UTC),
        )
    )
    routed = Router(registry, rings[ROUTER], Rules()).route(wire, outbox("sc-zigong"), 0, 0, now_ms)
    assert routed.record is not None
    return registry, rings, wire, routed.record


def _verify_against_outbox(registry: Any, record: AuditRecord, row: OutboxRow) -> None:
    verifier = Verifier(registry, [], outboxes={f"{outbox('sc-zigong')}:0": [row]})
    verifier.feed(0, record.position.encode(), record.to_bytes())
    verifier.finish()


@pytest.mark.parametrize("tamper", ["substituted input", "shifted arrival", "false untrusted_time"])
def test_dishonest_router_cannot_log_another_input_or_time(tamper: str) -> None:
    """A router that logs, at a real outbox position, bytes the agency did not send, an
    arrival time the broker did not stamp, or an untrusted time the broker did stamp, is
    caught: the verifier compares each decision with the outbox record itself."""
    now_ms = 1_795_000_000_000
    registry, _, wire, honest = _honest(now_ms)
    row = OutboxRow(0, now_ms, True, input_digests(wire))
    _verify_against_outbox(registry, honest, row)  # the honest decision passes
    if tamper == "substituted input":
        forged = honest.model_copy(
            update={
                "event": None,
                "wire_b64": base64.b64encode(b"not what was sent").decode(),
                "decision": "rejected",
                "reason": "schema",
                "delivered_to": [],
            }
        )
        row_for_forged = row
    elif tamper == "shifted arrival":
        shifted = format_time(datetime.fromtimestamp(now_ms / 1000 + 7200, tz=UTC))
        forged = honest.model_copy(
            update={"received_at": shifted, "decision": "rejected", "delivered_to": []}
        )
        rederived = Ledger(registry).rederive(forged, registry, Rules()).decision  # consistent with itself
        forged = forged.model_copy(update={"reason": rederived.reason, "detail": rederived.detail})
        assert forged.reason == "clock_skew"
        row_for_forged = row
    else:
        forged = honest.model_copy(
            update={
                "decision": "rejected",
                "reason": "untrusted_time",
                "delivered_to": [],
                "event": None,
                "wire_sha256": None,
                "wire_b64": base64.b64encode(wire).decode(),
                "detail": "the record's time was set by its producer; outbox topics must use LogAppendTime",
            }
        )
        row_for_forged = row
    # make the forged record agree with itself, so only the outbox can give it away
    d = Ledger(registry).rederive(forged, registry, Rules()).decision
    forged = forged.model_copy(
        update={
            "decision": "accepted" if d.accepted else "rejected",
            "reason": d.reason,
            "detail": d.detail,
            "delivered_to": d.deliver_to if d.accepted else [],
        }
    )
    with pytest.raises(VerificationError) as info:
        _verify_against_outbox(registry, forged, row_for_forged)
    assert info.value.why == "decision_mismatch"
    assert (
        "outbox" in info.value.message or "appended" in info.value.message or "broker" in info.value.message
    )
