"""Resource limits: one agency flooding its outbox does not stop the others' events.

sc-luzhou floods 3,000 events as fast as it can while cq-dazu sends 40 events at a steady
pace; every cq-dazu event still arrives, and its latency during the flood is reported next
to the latency without a flood (a figure, not a timed assertion)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest

from jointbus.streams.sdk import Delivery, Publisher, Subscriber
from tests.conftest import Bus
from tests.samples import SAMPLES
from tests.stats import STATS

pytestmark = pytest.mark.broker
FLOOD = 3000
STEADY = 40


async def steady_latencies(bus: Bus, tag: str) -> list[float]:
    """cq-dazu sends STEADY events to sc-yibin at 10/s; seconds from send to delivery."""
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    done = asyncio.Event()

    async def handle(d: Delivery) -> bool:
        if d.id in sent and d.id not in got:
            got[d.id] = time.monotonic() - sent[d.id]
            if len(got) == STEADY:
                done.set()
                return True
        return False

    sub = Subscriber(
        "sc-yibin",
        bus.rings["sc-yibin"],
        bus.registry,
        bus.bootstrap,
        group_id=False,
        receipts=False,
        from_beginning=False,
    )
    await sub.start()
    reader = asyncio.create_task(sub.run(handle))
    async with Publisher("cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap) as pub:
        for _ in range(STEADY):
            event_id, fut = await pub.submit(
                "rectification.issued",
                f"rectification/{tag}-{uuid.uuid4()}",
                ["sc-yibin"],
                SAMPLES["rectification.issued"],
            )
            sent[event_id] = time.monotonic()
            await fut
            await asyncio.sleep(0.1)
    try:
        await asyncio.wait_for(done.wait(), 180)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await sub.stop()
    return list(got.values())


async def test_flooding_agency_does_not_stop_others(bus: Bus) -> None:
    """Every steady event is delivered during a 3,000-event flood from another agency."""
    calm = await steady_latencies(bus, "calm")

    async def flood() -> None:
        async with Publisher("sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap) as pub:
            futures = [
                (
                    await pub.submit(
                        "rectification.issued",
                        f"rectification/flood-{uuid.uuid4()}",
                        ["cq-jiangjin"],
                        SAMPLES["rectification.issued"],
                    )
                )[1]
                for _ in range(FLOOD)
            ]
            await asyncio.gather(*futures)

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.5)
    during = await steady_latencies(bus, "flood")
    await flooding
    assert len(calm) == len(during) == STEADY
    STATS["flood: other agency's latency without flood, p50/max ms"] = (
        f"{1000 * statistics.median(calm):.0f} / {1000 * max(calm):.0f}"
    )
    STATS["flood: other agency's latency during a 3,000-event flood, p50/max ms"] = (
        f"{1000 * statistics.median(during):.0f} / {1000 * max(during):.0f}"
    )
