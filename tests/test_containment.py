"""The router at any hour, and when something inside it breaks: alerts are signed at the
moment they are produced, a failing record or aggregate is contained and audited, and a
router rebuilt from the audit log decides exactly as the one that wrote it."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from jointbus.agents.routing import Router
from jointbus.schemas.compose import compose
from jointbus.schemas.deadlines import china_date, deadline_moment
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.keys import new_federation, rotate
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER
from jointbus.schemas.verify import verify_event
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.samples import SAMPLES

#: the hours at which the old router crashed or a test failed: evening UTC, just before
#: midnight UTC, and just after midnight in China (16:01 UTC)
PINNED = ["2026-11-25T20:18:00+00:00", "2026-11-25T23:59:00+00:00", "2026-11-25T16:01:00+00:00"]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def issue(router: Router, rings: Any, at: datetime, deadline: str, offset: int, subject: str) -> AuditRecord:
    """sc-yibin issues a rectification to sc-zigong at ``at``; returns the audit record."""
    env = compose(
        keyring=rings["sc-yibin"],
        registry=router.registry,
        event_type="rectification.issued",
        subject=subject,
        recipients=["sc-zigong"],
        payload={**SAMPLES["rectification.issued"], "deadline": deadline},
        now=at,
    )
    routed = router.route(to_wire(env), outbox("sc-yibin"), 0, offset, ms(at))
    assert routed.record is not None
    return routed.record


@pytest.mark.parametrize("pinned", PINNED)
def test_overdue_alert_is_signed_when_it_is_raised_at_any_hour(pinned: str) -> None:
    """Keys made as `keys init` makes them (valid from one day before); a rectification due
    today (China time) is issued half an hour before the pinned moment; when its deadline
    passes, the alert verifies under the key valid then, with the deadline in its payload."""
    now = datetime.fromisoformat(pinned)
    registry, rings = new_federation(now - timedelta(days=1))
    router = Router(registry, rings[ROUTER], Rules())
    issued_at = now - timedelta(minutes=30)
    today = china_date(issued_at)
    record = issue(router, rings, issued_at, today.isoformat(), 0, f"rectification/{uuid.uuid4()}")
    assert record.decision == "accepted"
    assert router.overdue(issued_at) == []  # not yet due
    later = deadline_moment(today) + timedelta(minutes=1)
    (alert,) = router.overdue(later)
    assert alert.record is not None
    assert alert.record.event is not None
    verified = verify_event(to_wire(alert.record.event), registry, received_at=later)
    assert verified.envelope.time == later.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert verified.payload.deadline == today  # type: ignore[union-attr]
    assert router.overdue(later + timedelta(hours=1)) == []  # raised once


def test_deadline_before_the_event_is_refused_at_any_hour() -> None:
    """Yesterday (China time) as a deadline is refused whatever the hour in UTC."""
    for pinned in PINNED:
        now = datetime.fromisoformat(pinned)
        registry, rings = new_federation(now - timedelta(days=1))
        router = Router(registry, rings[ROUTER], Rules())
        yesterday = china_date(now) - timedelta(days=1)
        record = issue(router, rings, now, yesterday.isoformat(), 0, f"rectification/{uuid.uuid4()}")
        assert (record.decision, record.reason) == ("rejected", "bad_transition"), pinned


def test_one_failing_record_is_contained_and_routing_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception while deciding one record becomes an audited internal_error
    rejection (its owner told); the next record is routed as usual."""
    now = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    poisoned = f"rectification/{uuid.uuid4()}"
    original = Rules._transition

    def explode(self: Rules, current: Any, env: Any, family: str, payload: Any, ctx: Any) -> Any:
        if env.subject == poisoned:
            raise RuntimeError("bug in a rule")
        return original(self, current, env, family, payload, ctx)

    monkeypatch.setattr(Rules, "_transition", explode)
    router = Router(registry, rings[ROUTER], Rules())
    broken = issue(router, rings, now, "2026-12-31", 0, poisoned)
    assert (broken.decision, broken.reason, broken.sender) == ("rejected", "internal_error", "sc-yibin")
    assert broken.notice is not None
    fine = issue(router, rings, now, "2026-12-31", 1, f"rectification/{uuid.uuid4()}")
    assert fine.decision == "accepted"
    assert fine.prev == 0  # the failed record is part of the chain: nothing vanished
    assert router.counts["internal_error"] == 1


def test_poisoned_aggregate_is_quarantined_not_a_crash_loop() -> None:
    """An aggregate whose deadline check fails is quarantined once (an audited operator
    alert); the other aggregates' alerts go out; later scans skip it without failing."""
    now = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    router = Router(registry, rings[ROUTER], Rules())
    bad, good = f"rectification/{uuid.uuid4()}", f"rectification/{uuid.uuid4()}"
    issue(router, rings, now, "2026-11-26", 0, bad)
    issue(router, rings, now, "2026-11-26", 1, good)
    poisoned = router.ledger.aggregates[bad]
    assert poisoned.state is not None  # e.g. state from a buggy version, never validated:
    broken_state = poisoned.state.model_copy(update={"deadline": "not a date"})
    router.ledger.aggregates[bad] = dataclasses.replace(poisoned, state=broken_state)
    later = deadline_moment(datetime(2026, 11, 26).date()) + timedelta(seconds=1)
    routed = router.overdue(later)
    kinds = sorted((r.record.decision, r.record.position.split(":")[1]) for r in routed if r.record)
    assert kinds == [("emitted", good), ("quarantined", bad)]
    assert all(
        o.topic == AUDIT_TOPIC
        for r in routed
        if r.record and r.record.decision == "quarantined"
        for o in r.outputs
    )
    assert router.overdue(later + timedelta(minutes=5)) == []
    assert router.counts["quarantined"] == 1


def test_router_rebuilt_from_the_log_skips_decided_positions_and_continues_the_same_decisions() -> None:
    """A second router folded from the first one's audit records writes nothing for a
    position already decided (its outputs were committed with its audit record; a copy
    would reach readers twice), counts and logs the skip, and decides new records as the
    first would."""
    now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    first = Router(registry, rings[ROUTER], Rules())
    subject = f"rectification/{uuid.uuid4()}"
    records = [issue(first, rings, now, "2026-12-31", 0, subject)]
    again = issue(first, rings, now, "2026-12-31", 1, subject)  # already issued: bad_transition
    records.append(again)
    second = Router(registry, rings[ROUTER], Rules())
    for record in records:
        second.fold(record)
    with capture_logs() as logs:
        repeat = second.route(b"ignored: decided before", outbox("sc-yibin"), 0, 1, ms(now))
    assert repeat.repeat
    assert (repeat.record, repeat.outputs) == (None, [])
    assert second.counts["repeats"] == 1
    assert [e["log_level"] for e in logs if e.get("position") == again.position] == ["debug"]
    third = issue(second, rings, now, "2026-12-31", 2, subject)
    assert (third.decision, third.reason, third.prev) == ("rejected", "bad_transition", 1)
    assert second.counts["history_mismatch"] == 0


@pytest.mark.parametrize("edge", [timedelta(0), timedelta(milliseconds=1), timedelta(days=1)])
def test_alert_uses_the_router_key_valid_when_it_is_raised(edge: timedelta) -> None:
    """The router's key is rotated (the old one expires): an alert raised exactly at, just
    after, or a day after the new key's start is signed with the new key and verifies."""
    start = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    registry, rings = new_federation(start)
    issued_at = start + timedelta(hours=1)
    router = Router(registry, rings[ROUTER], Rules())
    record = issue(
        router, rings, issued_at, china_date(issued_at).isoformat(), 0, f"rectification/{uuid.uuid4()}"
    )
    assert record.decision == "accepted"
    due = deadline_moment(china_date(issued_at))
    rotated, ring = rotate(registry, rings[ROUTER], "sign", due, overlap=timedelta(0))
    fresh = Router(rotated, ring, Rules())
    fresh.fold(record)
    (alert,) = fresh.overdue(due + edge)
    assert alert.record is not None
    assert alert.record.event is not None
    assert alert.record.event["sigkeyid"] == "svc-router#sig-2"
    verify_event(to_wire(alert.record.event), rotated, received_at=due + edge)


def test_record_whose_producer_chose_its_time_is_refused() -> None:
    """A record whose Kafka timestamp is CreateTime (the outbox is not LogAppendTime) cannot
    serve as arrival time: refused as untrusted_time, the chain unbroken; the next record
    with a broker-set time is decided as usual."""
    now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    router = Router(registry, rings[ROUTER], Rules())
    env = compose(
        keyring=rings["sc-yibin"],
        registry=registry,
        event_type="rectification.issued",
        subject=f"rectification/{uuid.uuid4()}",
        recipients=["sc-zigong"],
        payload=SAMPLES["rectification.issued"],
        now=now,
    )
    refused = router.route(to_wire(env), outbox("sc-yibin"), 0, 0, ms(now), appended=False).record
    assert refused is not None
    assert (refused.decision, refused.reason, refused.sender) == ("rejected", "untrusted_time", "sc-yibin")
    fine = issue(router, rings, now, "2026-12-31", 1, f"rectification/{uuid.uuid4()}")
    assert (fine.decision, fine.prev) == ("accepted", 0)


def test_null_value_is_decided_not_raised() -> None:
    """A tombstone (None) is rejected as schema with a notice, never an exception."""
    now = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    router = Router(registry, rings[ROUTER], Rules())
    record = router.route(None, outbox("sc-zigong"), 0, 0, ms(now)).record
    assert record is not None
    assert (record.decision, record.reason, record.sender) == ("rejected", "schema", "sc-zigong")
    assert record.notice is not None


#: the attack of issue 25 (item 4): records just under the envelope bound that are not JSON,
#: so each audit record keeps them whole (base64); the old router kept the last 20,000 such
#: decisions in memory to write them again after a restart
FLOOD = 1_200
JUNK_BYTES = 255 * 1024
#: what the router may retain after the flood, whatever its length (the ledger's head per
#: outbox partition and counters are all it should keep of a rejected record)
RETAINED_AT_MOST = 5 * 1024 * 1024


def test_oversized_rejected_records_do_not_grow_router_memory() -> None:
    """1,200 records of 255 KiB that are not JSON are routed, and each audit record is folded
    into a second router as a restart's rebuild does: every one is rejected and audited,
    and neither router holds on to their bytes (measured with tracemalloc): what both retain
    together stays under a bound that does not grow with the flood."""
    now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    registry, rings = new_federation(now - timedelta(days=1))
    running = Router(registry, rings[ROUTER], Rules())
    rebuilt = Router(registry, rings[ROUTER], Rules())
    junk = bytes(range(128, 256)) * (JUNK_BYTES // 128)  # not UTF-8, so never JSON
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for offset in range(FLOOD):
            wire = offset.to_bytes(4, "big") + junk[4:]
            routed = running.route(wire, outbox("sc-zigong"), 0, offset, ms(now))
            assert routed.record is not None
            assert routed.record.decision == "rejected"
            assert routed.record.wire_b64 is not None  # the log keeps the bytes; memory does not
            rebuilt.fold(routed.record)
            del routed, wire
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < RETAINED_AT_MOST, f"routing and a rebuild retained {retained:,} bytes"
    assert rebuilt.ledger.heads == running.ledger.heads == {f"{outbox('sc-zigong')}:0": FLOOD - 1}
    assert running.counts["internal_error"] == rebuilt.counts["history_mismatch"] == 0
