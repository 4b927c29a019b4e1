"""The worker is SIGKILLed in the middle of a stream and restarted: no accepted event is
lost, and each recipient's Subscriber sees each one exactly once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from jointbus.processes import WorkerProcess
from jointbus.schemas.records import AuditRecord
from jointbus.streams.broker import LocalBroker
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC
from tests.harness import audit_settled, first_deliveries, make_federation
from tests.stats import STATS

pytestmark = pytest.mark.broker
EVENTS = 2000
RECIPIENTS = ["cq-yongchuan", "sc-luzhou"]


async def routed_count(bootstrap: str) -> int:
    return sum([1 async for _ in read_topic(bootstrap, AUDIT_TOPIC)])


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    spare_kafka: LocalBroker, tmp_path: Path
) -> None:
    """2,000 events; the worker is killed with SIGKILL mid-stream and restarted."""
    bootstrap = spare_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    worker = WorkerProcess(tmp_path, bootstrap).start()
    sent: list[str] = []
    try:
        async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
            futures = []
            for i in range(EVENTS):
                event_id, fut = await pub.submit(
                    "rectification.issued",
                    f"rectification/{uuid.uuid4()}",
                    RECIPIENTS,
                    {"responsible_unit": f"单位{i}", "problem": "问题", "deadline": "2099-12-31"},
                )
                sent.append(event_id)
                futures.append(fut)
                if i == EVENTS // 4:
                    await pub.flush()
                    for _ in range(300):  # until the worker is mid-stream (bounded)
                        if await routed_count(bootstrap) >= EVENTS // 8:
                            break
                        await asyncio.sleep(0.2)
                    worker.kill()  # SIGKILL while events are in flight
                    killed_at = await routed_count(bootstrap)
                    worker = WorkerProcess(tmp_path, bootstrap).start()
            await asyncio.gather(*futures)
        assert 0 < killed_at < EVENTS

        for agency in RECIPIENTS:
            seen, dropped = await first_deliveries(agency, rings[agency], registry, bootstrap, EVENTS, 180)
            assert len(seen) == EVENTS, f"{agency} saw {len(seen)}"
            assert set(seen) == set(sent), f"{agency} lost {len(set(sent) - set(seen))}"
            STATS[f"crash test: duplicates dropped by {agency}'s Subscriber"] = dropped

        await audit_settled(bootstrap, EVENTS)
        decided = {}
        async for _, _, value in read_topic(bootstrap, AUDIT_TOPIC):
            record = AuditRecord.model_validate_json(value)
            decided.setdefault(record.position, record)
        accepted = {r.event_id for r in decided.values() if r.decision == "accepted"}
        assert accepted == set(sent)
    finally:
        worker.stop()
