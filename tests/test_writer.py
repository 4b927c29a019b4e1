"""The router's writes on the real broker: an output that cannot be written stops progress
(no input acknowledged past it) until it is written, the audit log keeps every
partition's decisions in order, each once, and a restarted router writes nothing twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from structlog.testing import capture_logs

from jointbus.agents import worker as worker_module
from jointbus.agents.worker import LEASE_GROUP, OrderedWriter
from jointbus.audit.verifier import Verifier
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import Registry
from jointbus.streams.broker import LocalBroker
from jointbus.streams.lease import Lease
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, inbox, outbox
from tests.conftest import _broker
from tests.harness import audit_settled, eventually, make_federation, read_outbox
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker
EVENTS = 40


@pytest.fixture
def writer_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of each test's own: the writer rebuilds its memory from this audit log alone."""
    yield from _broker(tmp_path_factory, "writer-kafka")


Record = tuple[int, int, bytes, int, bool]  # partition, offset, value, timestamp, appended


async def published(bootstrap: str, tmp_path: Path, *, clue: bool = False) -> tuple[Registry, list[Record]]:
    """EVENTS rectifications from sc-zigong to cq-dazu (and a clue last, with ``clue``): the
    federation and the outbox records."""
    registry, rings = make_federation(tmp_path)
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
        for _ in range(EVENTS):
            subject = f"rectification/{uuid.uuid4()}"
            await pub.publish("rectification.issued", subject, ["cq-dazu"], SAMPLES["rectification.issued"])
        if clue:
            subject = f"clue/{uuid.uuid4()}"
            await pub.publish("clue.transferred", subject, ["cq-dazu"], SAMPLES["clue.transferred"])
    records = await read_outbox(bootstrap, outbox("sc-zigong"))
    return registry, sorted(records, key=lambda r: (r[3], r[0], r[1]))


def position(record: Record) -> str:
    return f"{outbox('sc-zigong')}:{record[0]}:{record[1]}"


async def route_each(writer: OrderedWriter, records: list[Record]) -> tuple[list[str], asyncio.Event]:
    """Hand every record to the writer; the positions acknowledged so far, and an event set
    once all are."""
    acked: list[str] = []
    all_acked = asyncio.Event()
    for record in records:
        partition, offset, value, ts, appended = record

        async def ack(at: str = position(record)) -> None:
            acked.append(at)
            if len(acked) >= len(records):
                all_acked.set()

        await writer.route((value, outbox("sc-zigong"), partition, offset, ts, appended), ack)
    return acked, all_acked


async def route_all(writer: OrderedWriter, records: list[Record], within: float = 60.0) -> list[str]:
    """Route every record; the positions acknowledged, once all are (fails after ``within`` s)."""
    acked, all_acked = await route_each(writer, records)
    async with asyncio.timeout(within):  # fails loudly if the writer never catches up
        await all_acked.wait()
    return acked


async def audit_log_holds_each_once(bootstrap: str, registry: Registry, records: list[Record]) -> None:
    """The log verifies, and its leaves are exactly one accepted decision per record."""
    await audit_settled(bootstrap, EVENTS)  # a commit's markers reach the log just after it
    rule, leaves = LeafRule(), []
    verifier = Verifier(registry, [])
    async for offset, key, value in read_topic(bootstrap, AUDIT_TOPIC):
        verifier.feed(offset, key, value)  # chains unbroken, decisions re-derived
        if rule.admit(key):
            leaves.append(AuditRecord.model_validate_json(value))
    report = verifier.finish()
    assert sorted(r.position for r in leaves) == sorted(map(position, records))
    assert report.leaves == EVENTS
    assert all(r.decision == "accepted" for r in leaves)


async def test_failed_write_stops_progress_until_it_is_written(
    writer_kafka: LocalBroker, tmp_path: Path
) -> None:
    """The 25th send is refused by the producer: nothing after it is acknowledged until the
    writer has replaced its producer, rebuilt its memory from the log and written it all."""
    bootstrap = writer_kafka.bootstrap
    registry, records = await published(bootstrap, tmp_path)
    writer = OrderedWriter(Settings(bootstrap=bootstrap, home=tmp_path), registry)
    await writer.start()
    assert writer._producer is not None
    real_send = writer._producer.send
    sends = 0

    async def flaky_send(*args: Any, **kwargs: Any) -> Any:
        nonlocal sends
        sends += 1
        if sends == 25:
            raise KafkaTimeoutError("buffer full (injected)")
        return await real_send(*args, **kwargs)

    writer._producer.send = flaky_send  # type: ignore[method-assign]
    try:
        acked = await route_all(writer, records)
    finally:
        await writer.stop()
    assert acked == list(map(position, records)), "inputs acknowledged out of order or twice"
    assert writer.recoveries == 1
    await audit_log_holds_each_once(bootstrap, registry, records)


#: how long the first commit is held: the broker aborts the transaction within its timeout
#: (1.5 s) plus its check interval (1 s); the rest is slack for a slow machine
HELD = 6.0


def hold_first_commit(writer: OrderedWriter, seconds: float) -> None:
    """Keep the writer's first transaction open ``seconds`` past its sends (a paused process,
    a partition whose leader is away) before committing it."""
    assert writer._producer is not None
    real_commit = writer._producer.commit_transaction
    commits = 0

    async def late_commit() -> None:
        nonlocal commits
        commits += 1
        if commits == 1:
            await asyncio.sleep(seconds)
        await real_commit()

    writer._producer.commit_transaction = late_commit  # type: ignore[method-assign]


async def test_transaction_aborted_for_its_timeout_is_written_again_not_taken_for_a_takeover(
    writer_kafka: LocalBroker, tmp_path: Path
) -> None:
    """The first transaction stays open past its timeout: the broker aborts it and bumps the
    producer's epoch, exactly as a new router would. The writer still holds the lease, so
    it is not a takeover: it recovers and writes everything once, instead of stopping the
    only router (what a partition outage longer than the timeout once did to a lone worker)."""
    bootstrap = writer_kafka.bootstrap
    registry, records = await published(bootstrap, tmp_path)
    lost: list[bool] = []
    lease = Lease(bootstrap, AUDIT_TOPIC, LEASE_GROUP, lambda: lost.append(True), name="alone")
    lease.start()  # a lone worker, as in the three-node test: nobody else could take over
    try:
        assert await asyncio.to_thread(lease.acquired.wait, 30.0), "the lone worker got no lease"
        writer = OrderedWriter(Settings(bootstrap=bootstrap, home=tmp_path), registry, lease.confirmed)
        writer.transaction_timeout_ms = 1500  # the broker aborts it (it checks every second)
        await writer.start()
        hold_first_commit(writer, HELD)
        try:
            with capture_logs() as logs:
                acked = await route_all(writer, records)
        finally:
            await writer.stop()
    finally:
        lease.release()
    assert not lost
    assert acked == list(map(position, records)), "inputs acknowledged out of order or twice"
    assert writer.recoveries == 1
    assert any(e["event"].startswith("transaction aborted by the broker") for e in logs), logs
    await audit_log_holds_each_once(bootstrap, registry, records)


async def read_committed(bootstrap: str, topic: str, within: float = 30.0) -> list[tuple[bytes, bytes]]:
    """(key, value) of every committed record of every partition of ``topic``, as readers
    see them (a commit's marker takes an offset: read up to each position, bounded)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"{topic} has no partitions"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # the last stable offsets: nothing left open
        found: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(within):  # fails loudly if the end is never reached
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                found += [(r.key or b"", r.value or b"") for records in batch.values() for r in records]
        return found
    finally:
        await consumer.stop()


def ids_of(records: list[tuple[bytes, bytes]]) -> Counter[str]:
    """How many copies of each event id ``records`` (inbox deliveries) hold."""
    return Counter(str(json.loads(value)["id"]) for _, value in records)


async def test_a_restarted_worker_writes_no_decision_twice(writer_kafka: LocalBroker, tmp_path: Path) -> None:
    """A worker routes the outbox and raises an overdue alert, then stops cleanly before its
    consumer offsets are committed (faust commits them later); the next worker is handed
    every record again, as faust does then. It finds each position decided in the committed
    log and writes nothing: read committed, every inbox holds each event, notice and alert
    once, and the audit log each position once (the old router wrote them all again)."""
    bootstrap = writer_kafka.bootstrap
    registry, records = await published(bootstrap, tmp_path, clue=True)
    settings = Settings(bootstrap=bootstrap, home=tmp_path, ack_deadline_seconds=1.0)
    first = OrderedWriter(settings, registry)
    await first.start()
    try:
        await route_all(first, records)

        async def raised() -> int | None:  # the clue's acknowledgement was due 1 s after it was sent
            return await first.alerts() or None

        assert await eventually(raised, within=30, what="the clue's overdue alert") == 1
    finally:
        await first.stop()  # commits the alert's transaction
    second = OrderedWriter(settings, registry)  # the restart: memory rebuilt from the log
    await second.start()
    try:
        acked = await route_all(second, records)
        assert await second.alerts() == 0
    finally:
        await second.stop()
    assert acked == list(map(position, records)), "a repeat must still be acknowledged, in order"
    assert second.router.counts["repeats"] == len(records) == EVENTS + 1
    audit = Counter(key.decode() for key, _ in await read_committed(bootstrap, AUDIT_TOPIC))
    assert set(audit) == {*map(position, records), *(p for p in audit if p.startswith("deadline:clue/"))}
    assert len(audit) == EVENTS + 2  # the decisions and the one alert
    assert set(audit.values()) == {1}, [p for p, n in audit.items() if n > 1]
    delivered = ids_of(await read_committed(bootstrap, inbox("cq-dazu")))
    notices = ids_of(await read_committed(bootstrap, inbox("sc-zigong")))
    assert len(delivered) == EVENTS + 2  # the events and the alert
    assert len(notices) == EVENTS + 2  # an acceptance notice each, and the alert
    assert set(delivered.values()) == set(notices.values()) == {1}


class Fenced(BaseException):
    """What the worker's fenced() exit is replaced with here: the process must survive."""


async def test_fenced_by_a_takeover_stops_routing_and_acknowledges_nothing_more(
    writer_kafka: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same fence, but the lease group says another worker leads now: the writer stops
    (the worker exits, status 75) and acknowledges nothing of the fenced transaction."""
    bootstrap = writer_kafka.bootstrap
    registry, records = await published(bootstrap, tmp_path)
    leading = True

    async def leads() -> bool:
        return leading

    stopped = asyncio.Event()

    def fenced() -> NoReturn:
        stopped.set()
        raise Fenced

    monkeypatch.setattr(worker_module, "fenced", fenced)
    writer = OrderedWriter(Settings(bootstrap=bootstrap, home=tmp_path), registry, leads)
    writer.transaction_timeout_ms = 1500
    await writer.start()
    hold_first_commit(writer, HELD)
    leading = False  # another worker was given the lease meanwhile
    acked, _ = await route_each(writer, records)
    try:
        async with asyncio.timeout(30):  # the fence is seen once the held commit is tried
            await stopped.wait()
        assert writer._acker is not None
        async with asyncio.timeout(5):
            with pytest.raises(Fenced):
                await writer._acker  # the committing task ends with the stop
    finally:
        assert writer._producer is not None
        await worker_module._stopped(writer._producer)  # the process would have exited
    assert acked == [], "a fenced writer acknowledged inputs whose outputs were aborted"
    assert writer.recoveries == 0  # and it started no producer to retry them
