"""End-to-end: Publisher → router → Subscriber beside a raw aiokafka
produce→consume→produce→consume pipe of the same message sizes, on the same broker, in
the same run. Throughput at full speed; latency (p50, p99) at 500 events/s offered; the
worker's peak resident memory."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import bench_bus
from jointbus.processes import WorkerProcess
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams.sdk import Delivery, Publisher, Subscriber

PAYLOAD = {
    "responsible_unit": "自贡某水利工程局",
    "problem": "渠道衬砌混凝土强度不达标，返工重做" * 3,
    "deadline": "2099-12-31",
    "source_finding": "F-YB-1",
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def offered(send: Callable[[int], Awaitable[None]], n: int, rate: float | None) -> None:
    """Call ``send(i)`` n times, paced at ``rate`` per second (None: as fast as possible)."""
    start = time.perf_counter()
    for i in range(n):
        if rate is not None:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await send(i)


# --------------------------------------------------------------------------- jointbus path
async def jointbus_run(
    bootstrap: str, registry: Registry, rings: dict[str, Keyring], n: int, rate: float | None
) -> dict[str, float]:
    sent: dict[str, float] = {}
    lat: list[float] = []
    done = asyncio.Event()
    first = 0.0

    async def handle(d: Delivery) -> bool:
        if d.id in sent:
            lat.append(time.perf_counter() - sent.pop(d.id))
            if len(lat) >= n:
                done.set()
                return True
        return False

    sub = Subscriber(
        "cq-yongchuan",
        rings["cq-yongchuan"],
        registry,
        bootstrap,
        group_id=False,
        receipts=False,
        from_beginning=False,
    )
    await sub.start()
    reader = asyncio.create_task(sub.run(handle))
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:

        async def send(i: int) -> None:
            envelope = pub.build(
                "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-yongchuan"], PAYLOAD
            )
            sent[envelope["id"]] = time.perf_counter()
            from jointbus.schemas.envelope import to_wire

            await pub.send_wire(to_wire(envelope), envelope["subject"])

        first = time.perf_counter()
        await offered(send, n, rate)
        await pub.flush()
        await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - first
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await sub.stop()
    return {
        "events_per_s": n / elapsed,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * pct(lat, 99),
    }


# ------------------------------------------------------------------------------ raw pipe
async def raw_run(bootstrap: str, wire: bytes, n: int, rate: float | None) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    a, b = f"bench.raw.a.{tag}", f"bench.raw.b.{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(a, 3, 1), NewTopic(b, 3, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    relay_in = AIOKafkaConsumer(
        a,
        bootstrap_servers=bootstrap,
        group_id=f"relay-{tag}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    relay_out = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    sink = AIOKafkaConsumer(
        b,
        bootstrap_servers=bootstrap,
        group_id=f"sink-{tag}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    for client in (producer, relay_in, relay_out, sink):
        await client.start()
    sent: dict[bytes, float] = {}
    lat: list[float] = []

    async def relay() -> None:
        while True:
            batch = await relay_in.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    await relay_out.send(b, r.value, key=r.key)
            if batch:
                await relay_out.flush()
                await relay_in.commit()

    async def drain() -> None:
        while len(lat) < n:
            batch = await sink.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    lat.append(time.perf_counter() - sent.pop(r.key))
            if batch:
                await sink.commit()

    relay_task = asyncio.create_task(relay())
    drain_task = asyncio.create_task(drain())
    await asyncio.sleep(3)  # both groups joined

    async def send(i: int) -> None:
        key = f"{tag}-{i}".encode()
        sent[key] = time.perf_counter()
        await producer.send(a, wire, key=key)

    first = time.perf_counter()
    await offered(send, n, rate)
    await producer.flush()
    await asyncio.wait_for(drain_task, 300)
    elapsed = time.perf_counter() - first
    relay_task.cancel()
    await asyncio.gather(relay_task, return_exceptions=True)
    for client in (producer, relay_in, relay_out, sink):
        await client.stop()
    return {
        "events_per_s": n / elapsed,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * pct(lat, 99),
    }


def run(n: int = 3000, rate: float = 500.0, paced_seconds: float = 10.0) -> dict[str, Any]:
    """Start a broker and a worker of its own, measure both paths, stop everything."""
    with bench_bus("jointbus-bench-") as bus:
        broker, registry, rings = bus.broker, bus.registry, bus.rings
        worker = bus.worker = WorkerProcess(bus.home, broker.bootstrap).start()
        wire = to_wire(
            compose(
                keyring=rings["sc-zigong"],
                registry=registry,
                event_type="rectification.issued",
                subject=f"rectification/{uuid.uuid4()}",
                recipients=["cq-yongchuan"],
                payload=PAYLOAD,
            )
        )
        # warm-up of both paths, then the measured runs
        asyncio.run(jointbus_run(broker.bootstrap, registry, rings, 300, None))
        ours = asyncio.run(jointbus_run(broker.bootstrap, registry, rings, n, None))
        raw = asyncio.run(raw_run(broker.bootstrap, wire, n, None))
        paced_n = int(rate * paced_seconds)
        ours_paced = asyncio.run(jointbus_run(broker.bootstrap, registry, rings, paced_n, rate))
        raw_paced = asyncio.run(raw_run(broker.bootstrap, wire, paced_n, rate))
        rss = worker.peak_rss_mb()
    return {
        "events": n,
        "message_bytes": len(wire),
        "jointbus_events_per_s": round(ours["events_per_s"]),
        "raw_pipe_events_per_s": round(raw["events_per_s"]),
        "throughput_ratio": round(ours["events_per_s"] / raw["events_per_s"], 3),
        "offered_per_s": rate,
        "jointbus_p50_ms": round(ours_paced["p50_ms"], 1),
        "jointbus_p99_ms": round(ours_paced["p99_ms"], 1),
        "raw_p50_ms": round(raw_paced["p50_ms"], 1),
        "raw_p99_ms": round(raw_paced["p99_ms"], 1),
        "worker_peak_rss_mb": round(rss, 1),
    }
