"""A hostile member holding one agency's credentials and keys (sc-zigong, unless named)
cannot stop, blind or smear the bus. Each test is one attack against the real worker on
the real broker, followed by an honest event that must still arrive."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from jointbus.audit.completeness import outbox_records
from jointbus.processes import WorkerProcess
from jointbus.schemas.compose import compose
from jointbus.schemas.deadlines import china_date
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import Reason
from jointbus.schemas.families.notice import RejectionNotice
from jointbus.schemas.governance import ChairPassed, proposal
from jointbus.schemas.ids import parse_time, utcnow, uuid7
from jointbus.schemas.projections import project
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.sealing import seal
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Delivery, Subscriber
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.conftest import Bus, _broker
from tests.harness import collect, eventually, jointbus_cli, make_federation, nothing_more
from tests.samples import SAMPLES
from tests.test_router import about, assert_rejected, audit_of, notice_for, publish, send_raw, signed

pytestmark = pytest.mark.broker
ATTACKER = "sc-zigong"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    """A bus of its own (broker, federation, worker): after the attack run its whole audit
    log must verify, every outbox position decided once."""
    for broker in _broker(tmp_path_factory, "hostile-kafka"):
        home = tmp_path_factory.mktemp("hostile-bus")
        registry, rings = make_federation(home)
        worker = WorkerProcess(home, broker.bootstrap, JOINTBUS_DEADLINE_SCAN_SECONDS="1").start()
        yield Bus(broker.bootstrap, home, registry, rings, worker)
        worker.stop()


async def honest_event_still_arrives(bus: Bus) -> None:
    """After the attack, an ordinary event from another agency is routed and delivered."""
    subject = f"rectification/{uuid.uuid4()}"
    event_id = await publish(bus, "sc-neijiang", "rectification.issued", subject, ["cq-dazu"])
    got = await collect("cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, about(subject), 1)
    assert [d.id for d in got] == [event_id]


async def send_bytes(
    bus: Bus, owner: str, wire: bytes | None, key: str, timestamp_ms: int | None = None
) -> str:
    """Raw bytes (or a null value) into ``owner``'s outbox with a bare Kafka producer (an
    attacker needs no SDK), optionally with a timestamp of its choosing; returns the
    record's position."""
    producer = AIOKafkaProducer(bootstrap_servers=bus.bootstrap, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        meta = await producer.send_and_wait(outbox(owner), wire, key=key.encode(), timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()
    return f"{outbox(owner)}:{meta.partition}:{meta.offset}"


async def audit_at(bus: Bus, position: str, within: float = 30.0) -> AuditRecord:
    """The decision logged for ``position`` (fails loudly if none within ``within`` s)."""

    async def logged() -> AuditRecord | None:
        async for _, key, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
            if key == position.encode():
                return AuditRecord.model_validate_json(value)
        return None

    return await eventually(logged, within=within, what=f"a decision for {position}")


async def test_past_deadline_cannot_stop_routing(bus: Bus) -> None:
    """A rectification whose deadline has already passed (2020-01-01) is refused at once,
    so no deadline timer can ever act on a moment before the router's keys."""
    payload = {**SAMPLES["rectification.issued"], "deadline": "2020-01-01"}
    subject = f"rectification/{uuid.uuid4()}"
    event_id = await publish(bus, ATTACKER, "rectification.issued", subject, ["sc-luzhou"], payload)
    await assert_rejected(bus, ATTACKER, event_id, Reason.BAD_TRANSITION)
    await honest_event_still_arrives(bus)


async def test_deep_nesting_is_rejected_and_audited(bus: Bus) -> None:
    """~970 nested arrays: refused as too_deep before any recursive work, audited at its
    position, the owner told; nothing vanishes and the next records are routed."""
    wire = b'{"specversion":"1.0","data":' + b"[" * 970 + b"]" * 970 + b"}"
    positions = [await send_bytes(bus, ATTACKER, wire, f"deep/{i}") for i in range(3)]
    for position in positions:
        record = await audit_at(bus, position)
        assert (record.decision, record.reason, record.sender) == ("rejected", "too_deep", ATTACKER)
        assert record.wire_b64 is not None  # kept as bytes: no parse of the hostile text
        assert record.notice is not None
        assert record.notice["recipients"] == [ATTACKER]
    await honest_event_still_arrives(bus)


async def test_null_record_is_decided_and_routing_goes_on(bus: Bus) -> None:
    """Null values (Kafka tombstones) in the outbox: each gets its audited rejection and the
    owner a notice; the router neither crashes nor skips them, and routing goes on."""
    positions = [await send_bytes(bus, ATTACKER, None, f"null/{i}") for i in range(3)]
    for position in positions:
        record = await audit_at(bus, position)
        assert (record.decision, record.reason, record.sender) == ("rejected", "schema", ATTACKER)
        assert record.notice is not None
    await honest_event_still_arrives(bus)


async def test_producer_chosen_timestamp_cannot_backdate_arrival(bus: Bus) -> None:
    """An event signed 23 hours ago, sent with a Kafka timestamp of 23 hours ago and a
    deadline already passed: the broker stamps its arrival (LogAppendTime), so it is refused
    as back-dated and no overdue alert is ever signed against the recipient."""
    past = utcnow() - timedelta(hours=23)
    payload = {**SAMPLES["rectification.issued"], "deadline": china_date(past).isoformat()}
    env = signed(
        bus,
        bus.rings[ATTACKER],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["cq-dazu"],
        payload=payload,
        now=past,
    )
    position = await send_bytes(bus, ATTACKER, to_wire(env), env["subject"], int(past.timestamp() * 1000))
    record = await audit_at(bus, position)
    assert (record.decision, record.reason) == ("rejected", "clock_skew")
    assert abs(parse_time(record.received_at) - utcnow()) < timedelta(minutes=2)  # the broker's time
    assert not await nothing_more(
        "cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, about(env["subject"])
    )
    await honest_event_still_arrives(bus)


async def test_spoofed_source_gets_no_reflected_notice(bus: Bus) -> None:
    """Garbage in zigong's outbox claiming to come from sc-luzhou, with attacker text as its
    type: the notice goes to zigong (the authenticated writer) only, never echoes the text,
    and the rejection counts against zigong."""
    smear = "org.jointbus.请立即撤销泸州的全部线索.v1 <script>"
    env = signed(
        bus, bus.rings["sc-luzhou"], "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-dazu"]
    )
    env.update(type=smear, signature="A" * 86)  # unsigned, badly signed and garbage, at once
    position = await send_bytes(bus, ATTACKER, to_wire(env), env["subject"])
    record = await audit_at(bus, position)
    assert (record.decision, record.sender) == ("rejected", ATTACKER)
    notices = await collect(
        ATTACKER, bus.rings[ATTACKER], bus.registry, bus.bootstrap, notice_for(env["id"]), 1, within=30
    )
    notice = notices[0].payload
    assert isinstance(notice, RejectionNotice)
    assert notice.rejected_type == ""  # not a catalog type: not repeated
    assert "请立即撤销" not in json.dumps(notices[0].envelope.model_dump(), ensure_ascii=False)
    assert not await nothing_more(
        "sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap, notice_for(env["id"])
    )
    counts = project([record]).counts
    assert counts[ATTACKER]["rejected"] == 1
    assert counts["sc-luzhou"]["rejected"] == 0
    await honest_event_still_arrives(bus)


async def test_agency_cannot_seize_the_chair(bus: Bus) -> None:
    """The chair is the registry's (cq-rongchang): it passes only by a majority's decision.
    An agency that proposes itself and approves its own proposal again changes nothing, and
    only the chair records a meeting as chair."""
    others = [a for a in bus.registry.voters if a != ATTACKER]
    at = utcnow()
    seize = proposal(bus.registry, [ChairPassed(chair=ATTACKER)], at, "我来当主席")
    proposed = await publish(
        bus, ATTACKER, "governance.proposed", "governance/registry", others, seize, now=at
    )
    self_vote = {"proposal_id": proposed, "new_digest": seize["new_digest"]}
    again = await publish(bus, ATTACKER, "governance.approved", "governance/registry", others, self_vote)
    await assert_rejected(bus, ATTACKER, again, Reason.BAD_TRANSITION)
    meeting = {**SAMPLES["meeting.held"], "chair": "sc-yibin"}
    usurp = await publish(bus, "sc-yibin", "meeting.held", f"meeting/{uuid.uuid4()}", ["sc-luzhou"], meeting)
    await assert_rejected(bus, "sc-yibin", usurp, Reason.NOT_AUTHORIZED)
    credited = await publish(
        bus, ATTACKER, "meeting.held", f"meeting/{uuid.uuid4()}", ["sc-luzhou"], SAMPLES["meeting.held"]
    )  # names cq-rongchang as chair, but sent by zigong
    await assert_rejected(bus, ATTACKER, credited, Reason.NOT_AUTHORIZED)
    await honest_event_still_arrives(bus)


async def test_backdated_event_is_rejected(bus: Bus) -> None:
    """An event dated 20 hours before its arrival (key valid then) is refused: clock_skew."""
    env = signed(
        bus,
        bus.rings[ATTACKER],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["sc-luzhou"],
        now=utcnow() - timedelta(hours=20),
    )
    await send_raw(bus, ATTACKER, env)
    await assert_rejected(bus, ATTACKER, env["id"], Reason.CLOCK_SKEW)
    await honest_event_still_arrives(bus)


async def test_reused_event_id_on_another_subject_is_rejected(bus: Bus) -> None:
    """The id of an accepted event, re-signed on another aggregate, is a duplicate: the
    recipient's Subscriber would otherwise drop it silently while the aggregate moved on."""
    first = signed(
        bus, bus.rings[ATTACKER], "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-dazu"]
    )
    await send_raw(bus, ATTACKER, first)
    again = signed(
        bus,
        bus.rings[ATTACKER],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["cq-dazu"],
        event_id=first["id"],
        now=utcnow(),
    )
    again = {**again, "time": first["time"]}
    kid, key = bus.rings[ATTACKER].signer(bus.registry, utcnow())
    again = sign_envelope(again, key, kid)
    await send_raw(bus, ATTACKER, again)
    records = await audit_of(bus, first["id"], at_least=2)
    assert [(r.decision, r.reason) for r in records] == [("accepted", None), ("rejected", "duplicate")]
    delivered = await nothing_more(
        "cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, about(again["subject"])
    )
    assert delivered == []
    await honest_event_still_arrives(bus)


async def test_forged_event_id_time_is_rejected(bus: Bus) -> None:
    """A UUIDv7 whose embedded time disagrees with ``time`` (to dodge the id window)."""
    old_id = uuid7(int((utcnow() - timedelta(days=3)).timestamp() * 1000))
    env = signed(
        bus,
        bus.rings[ATTACKER],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["cq-dazu"],
        event_id=old_id,
    )
    await send_raw(bus, ATTACKER, env)
    await assert_rejected(bus, ATTACKER, old_id, Reason.SCHEMA)


async def test_unopenable_clue_is_not_counted_open(bus: Bus) -> None:
    """A clue whose key is labelled for cq-yongchuan but encrypted to another agency's key:
    the router cannot tell, but yongchuan's Subscriber answers with a signed refusal
    (seal_broken); the router marks the clue undeliverable, the sender learns it, and no
    figure counts it as an open clue of yongchuan."""
    subject = f"clue/{uuid.uuid4()}"
    now = utcnow()
    env = compose(
        keyring=bus.rings[ATTACKER],
        registry=bus.registry,
        event_type="clue.transferred",
        subject=subject,
        recipients=["cq-yongchuan"],
        payload=SAMPLES["clue.transferred"],
        now=now,
    )
    kid, _ = bus.registry.sealing_key("cq-yongchuan", now)
    _, wrong_key = bus.registry.sealing_key("sc-yibin", now)
    plaintext = json.dumps(SAMPLES["clue.transferred"], ensure_ascii=False).encode()
    env["data"] = seal(plaintext, env["id"], [("cq-yongchuan", kid, wrong_key)])
    signer_kid, key = bus.rings[ATTACKER].signer(bus.registry, now)
    env = sign_envelope(env, key, signer_kid)
    await send_raw(bus, ATTACKER, env)
    assert [r.decision for r in await audit_of(bus, env["id"])] == ["accepted"]

    await collect_refusal(bus)

    def refused(d: Delivery) -> bool:
        return d.family == "receipt" and d.envelope.causationid == env["id"]

    receipts = await collect(
        ATTACKER, bus.rings[ATTACKER], bus.registry, bus.bootstrap, refused, 1, within=40
    )
    receipt: Any = receipts[0].payload
    assert (receipt.status, receipt.reason) == ("refused", "seal_broken")
    records = [AuditRecord.model_validate_json(v) async for _, _, v in read_topic(bus.bootstrap, AUDIT_TOPIC)]
    projection = project(records)
    assert projection.items[subject].status == "undeliverable"
    (yongchuan,) = [row for row in projection.rows() if row["agency"] == "cq-yongchuan"]
    open_clues = [
        s for s, item in projection.items.items() if item.kind == "clue" and item.status == "transferred"
    ]
    assert subject not in open_clues
    assert yongchuan["clues_open"] == len(
        [s for s in open_clues if projection.items[s].holders == ["cq-yongchuan"]]
    )
    await honest_event_still_arrives(bus)


async def collect_refusal(bus: Bus) -> None:
    """cq-yongchuan reads its inbox with receipts on until the refusal has been sent."""
    ring = bus.rings["cq-yongchuan"]
    sub = Subscriber("cq-yongchuan", ring, bus.registry, bus.bootstrap, group_id=False, until_end=True)
    async with sub:
        async for _ in sub:
            pass
    assert sub.rejected >= 1, "the Subscriber refused nothing"


async def test_too_large_event_gets_a_notice(bus: Bus) -> None:
    """An envelope over the size limit is refused as too_large and its owner is told."""
    wire = b'{"specversion":"1.0","pad":"' + b"x" * (300 * 1024) + b'"}'
    position = await send_bytes(bus, ATTACKER, wire, "big/1")
    record = await audit_at(bus, position)
    assert (record.reason, record.sender) == ("too_large", ATTACKER)
    assert record.notice is not None
    assert record.notice["recipients"] == [ATTACKER]
    await honest_event_still_arrives(bus)


async def test_audit_log_verifies_after_the_attack_run(bus: Bus) -> None:
    """`jointbus audit verify --grace 0` on this bus's whole log: OK, and every outbox
    position decided exactly once (the receipts of the last test are waited for)."""
    outboxes = [outbox(a) for a in sorted(bus.registry.agency_ids)]

    async def all_decided() -> set[str] | None:  # the last receipts may still be on their way
        records = await outbox_records(bus.bootstrap, outboxes)
        wanted = {f"{stream}:{offset}" for stream, rows in records.items() for offset, *_ in rows}
        decided = {k.decode() async for _, k, _ in read_topic(bus.bootstrap, AUDIT_TOPIC) if k}
        return wanted if wanted <= decided else None

    wanted = await eventually(all_decided, within=30, what="a decision for every outbox record")
    done = await jointbus_cli(bus.home, bus.bootstrap, "audit", "verify", "--grace", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log OK" in done.stdout
    assert f"complete: {len(wanted)} of {len(wanted)} outbox records decided exactly once" in done.stdout
