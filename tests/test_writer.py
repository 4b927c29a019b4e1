"""The router's writes on the real broker: an output that cannot be written stops progress
(no input acknowledged past it) until it is written, and the audit log keeps every
partition's decisions in order, each once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from jointbus.agents.worker import OrderedWriter
from jointbus.audit.verifier import Verifier
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.records import AuditRecord
from jointbus.streams.broker import LocalBroker
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.conftest import _broker
from tests.harness import audit_settled, make_federation, read_outbox
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker
EVENTS = 40


@pytest.fixture(scope="module")
def writer_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of its own: the writer rebuilds its memory from this audit log alone."""
    yield from _broker(tmp_path_factory, "writer-kafka")


async def test_failed_write_stops_progress_until_it_is_written(
    writer_kafka: LocalBroker, tmp_path: Path
) -> None:
    """The 25th send is refused by the producer: nothing after it is acknowledged until the
    writer has replaced its producer, rebuilt its memory from the log and written it all."""
    bootstrap = writer_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
        for _ in range(EVENTS):
            subject = f"rectification/{uuid.uuid4()}"
            await pub.publish("rectification.issued", subject, ["cq-dazu"], SAMPLES["rectification.issued"])
    records = sorted(await read_outbox(bootstrap, outbox("sc-zigong")), key=lambda r: (r[3], r[0], r[1]))
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
    acked: list[str] = []
    all_acked = asyncio.Event()
    try:
        for partition, offset, value, ts, appended in records:
            position = f"{outbox('sc-zigong')}:{partition}:{offset}"

            async def ack(position: str = position) -> None:
                acked.append(position)
                if len(acked) >= len(records):
                    all_acked.set()

            await writer.route((value, outbox("sc-zigong"), partition, offset, ts, appended), ack)
        async with asyncio.timeout(60):  # fails loudly if the writer never catches up
            await all_acked.wait()
    finally:
        await writer.stop()
    positions = [f"{outbox('sc-zigong')}:{p}:{o}" for p, o, _, _, _ in records]
    assert acked == positions, "inputs acknowledged out of order or twice"
    assert writer.recoveries == 1

    await audit_settled(bootstrap, EVENTS)  # a commit's markers reach the log just after it
    rule, leaves = LeafRule(), []
    verifier = Verifier(registry, [])
    async for offset, key, value in read_topic(bootstrap, AUDIT_TOPIC):
        verifier.feed(offset, key, value)  # chains unbroken, decisions re-derived
        if rule.admit(key):
            leaves.append(AuditRecord.model_validate_json(value))
    report = verifier.finish()
    assert sorted(r.position for r in leaves) == sorted(positions)
    assert report.leaves == EVENTS
    assert all(r.decision == "accepted" for r in leaves)
