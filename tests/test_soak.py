"""Faults on real processes: the worker SIGKILLed at random moments at least 10 times and
the broker restarted once while publishers keep publishing. Afterwards nothing is lost or
duplicated for any recipient, the audit log holds each decision exactly once, and it verifies."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jointbus.processes import WorkerProcess
from jointbus.streams.broker import LocalBroker
from tests.conftest import _broker
from tests.harness import decisions_are_complete, first_deliveries, make_federation, publish_through_faults
from tests.stats import STATS

pytestmark = pytest.mark.broker
KILLS = 10
#: events published after the last kill and restart: the last worker routes fresh traffic too
TAIL = 100
#: a bound on the events of the kill test: the chaos must be over before it (fails loudly)
MAX_EVENTS = 3000
RECIPIENTS = ["cq-jiangjin", "sc-neijiang"]


@pytest.fixture(scope="module")
def soak_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of its own: the audit log verified at the end holds only this test's history."""
    yield from _broker(tmp_path_factory, "soak-kafka")


async def test_random_kills_and_a_broker_restart_lose_and_duplicate_nothing(
    soak_kafka: LocalBroker, tmp_path: Path
) -> None:
    """≥10 SIGKILLs of the worker and one broker restart, mid-stream: sc-yibin publishes
    from before the first kill until ``TAIL`` events after the last restart, so every kill
    and the broker restart fall while events are published and routed."""
    bootstrap = soak_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    rng = random.Random(2026)
    worker = WorkerProcess(tmp_path, bootstrap).start()
    sent: list[str] = []
    chaos_over = asyncio.Event()
    at_chaos_end: list[int] = []  # how many events were published when the chaos ended
    kills = 0
    broker_restarts = 0

    def more() -> bool:
        if len(sent) >= MAX_EVENTS:
            return False
        if not chaos_over.is_set():
            return True
        if not at_chaos_end:
            at_chaos_end.append(len(sent))
        return len(sent) < at_chaos_end[0] + TAIL

    async def publish() -> None:
        await publish_through_faults(bootstrap, registry, rings, more, sent, 0.05)

    async def chaos() -> None:
        nonlocal worker, kills, broker_restarts
        while kills < KILLS:
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            worker.kill()
            kills += 1
            if kills == KILLS // 2:
                await asyncio.to_thread(soak_kafka.stop)
                await asyncio.to_thread(soak_kafka.start)
                broker_restarts += 1
            worker = await asyncio.to_thread(WorkerProcess(tmp_path, bootstrap).start)
        chaos_over.set()

    started = time.monotonic()
    lost_total = duplicates_total = 0
    await asyncio.gather(publish(), chaos())
    try:
        assert at_chaos_end, f"the chaos outlasted {MAX_EVENTS} events: not every kill was mid-stream"
        assert len(sent) == at_chaos_end[0] + TAIL, "events published after the last restart"
        for agency in RECIPIENTS:
            seen, dropped = await first_deliveries(agency, rings[agency], registry, bootstrap, len(sent), 240)
            lost = set(sent) - set(seen)
            lost_total += len(lost)
            duplicates_total += len(seen) - len(set(seen))
            assert not lost, f"{agency} lost {len(lost)}"
            assert len(seen) == len(set(seen)) == len(sent)
            STATS[f"soak duplicates dropped by {agency}'s Subscriber"] = dropped
        report = await decisions_are_complete(bootstrap, registry, sent)
        STATS.update(
            {
                "soak worker kills survived": kills,
                "soak broker restarts": broker_restarts,
                "soak events published": len(sent),
                "soak events published after the last restart": len(sent) - at_chaos_end[0],
                "soak events lost": lost_total,
                "soak duplicates seen": duplicates_total,
                "soak audit leaves (one per decision)": report.leaves,
                "soak audit records repeated after crashes (not leaves)": report.repeats,
                "soak seconds": round(time.monotonic() - started),
            }
        )
        assert kills >= 10
        assert broker_restarts == 1
    finally:
        worker.stop()


async def waiting_for_kafka(worker: WorkerProcess, within: float = 30.0) -> None:
    """Wait (bounded, failing loudly) until ``worker`` logs that it is waiting for Kafka."""
    deadline = time.monotonic() + within
    while "Kafka not answering" not in worker.log.read_text(errors="replace"):
        assert worker.proc is not None
        assert worker.proc.poll() is None, f"worker exited; see {worker.log}"
        assert time.monotonic() < deadline, f"worker not waiting for Kafka after {within} s; see {worker.log}"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def restart_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """Another broker of its own, for the kill-during-restart test."""
    yield from _broker(tmp_path_factory, "restart-kafka")


async def test_worker_killed_while_the_broker_restarts_loses_nothing(
    restart_kafka: LocalBroker, tmp_path: Path
) -> None:
    """The worker is SIGKILLed while the broker is going down, with outputs in flight, and
    twice more while it is away; afterwards every event is delivered once and decided once."""
    bootstrap = restart_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    worker = WorkerProcess(tmp_path, bootstrap).start()
    sent: list[str] = []
    total = 300
    milestones = [asyncio.Event(), asyncio.Event()]  # a third and two thirds published

    def reached() -> None:
        for n, milestone in enumerate(milestones):
            if len(sent) >= total * (n + 1) // 3:
                milestone.set()

    async def publish() -> None:
        await publish_through_faults(
            bootstrap, registry, rings, lambda: len(sent) < total, sent, 0.02, reached
        )

    async def chaos() -> None:
        nonlocal worker
        for milestone in milestones:
            await milestone.wait()
            stopping = asyncio.create_task(asyncio.to_thread(restart_kafka.stop))
            await asyncio.sleep(0.3)
            worker.kill()  # outputs in flight while the broker goes away
            await stopping
            worker = WorkerProcess(tmp_path, bootstrap).launch()  # waits for the broker
            await waiting_for_kafka(worker)
            worker.kill()  # killed again while the broker is away
            await asyncio.to_thread(restart_kafka.start)
            worker = await asyncio.to_thread(WorkerProcess(tmp_path, bootstrap).start)

    try:
        await asyncio.gather(publish(), chaos())
        for agency in RECIPIENTS:
            seen, _ = await first_deliveries(agency, rings[agency], registry, bootstrap, total, 240)
            assert len(seen) == len(set(seen)) == total
            assert set(seen) == set(sent), f"{agency} lost {len(set(sent) - set(seen))}"
        report = await decisions_are_complete(bootstrap, registry, sent)
        STATS["restart test: audit leaves (one per decision)"] = report.leaves
        STATS["restart test: repeated records (not leaves)"] = report.repeats
    finally:
        worker.stop()
