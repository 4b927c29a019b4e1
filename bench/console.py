"""The console over a long log: how long the overview takes beside `audit replay` of the same
log in the same run. The log (100,000 router decisions, as bench/auditlog.py builds them) is
written to the audit topic of a broker of the benchmark's own; then, interleaved rounds of

- replay: ``views.load_projection`` (what `jointbus audit replay` runs) over the topic;
- console cold: a new ``LogState`` caught up from the same topic, then ``GET /`` rendered;
- console warm: ``GET /`` of a console that has read the log (what a person reloading sees);
- console period: ``GET /?since=…`` (the period folded again from the records in memory).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.auditlog import synthetic_log
from bench.common import bench_bus
from jointbus.console.app import create_app
from jointbus.console.reading import catch_up
from jointbus.console.state import LogState
from jointbus.schemas.ids import format_time, utcnow
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC
from jointbus.views import load_projection


async def write_log(bootstrap: str, rows: list[tuple[int, bytes, bytes]]) -> None:
    """The records onto the audit topic, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        for start in range(0, len(rows), 5000):
            sent = [await producer.send(AUDIT_TOPIC, v, key=k) for _, k, v in rows[start : start + 5000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def overview_seconds(
    cfg: Settings, registry: Any, state: LogState, path: str = "/", n: int = 1
) -> float:
    """Median seconds of ``n`` renders of ``path`` by one console over ``state`` (in process,
    over HTTP); the first render also compiles the templates."""
    app = create_app(cfg, registry, state, follow_log=False)
    seconds = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        for _ in range(n):
            began = time.perf_counter()
            answer = await http.get(path)
            seconds.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text[:500]
    return statistics.median(seconds[1:] or seconds)


async def measure(cfg: Settings, registry: Any, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"replay": [], "cold": [], "warm": [], "period": []}
    since = format_time(utcnow() - timedelta(hours=3))
    for _ in range(rounds):
        began = time.perf_counter()
        projection = await load_projection(cfg, registry=registry)
        times["replay"].append(time.perf_counter() - began)
        began = time.perf_counter()
        state = LogState(registry)
        await catch_up(state, cfg)
        await overview_seconds(cfg, registry, state)
        times["cold"].append(time.perf_counter() - began)
        assert state.projection.rows() == projection.rows(), "the console and replay disagree"
        times["warm"].append(
            statistics.median([await overview_seconds(cfg, registry, state) for _ in range(5)])
        )
        times["period"].append(await overview_seconds(cfg, registry, state, f"/?since={since}"))
    return times


def run(events: int = 100_000, rounds: int = 3) -> dict[str, Any]:
    """Build the log, write it, time replay and the console's overview (best of ``rounds``)."""
    began = time.perf_counter()
    registry, rows, _ = synthetic_log(events)
    built = time.perf_counter() - began
    with bench_bus("jointbus-bench-console-") as bus:
        asyncio.run(write_log(bus.broker.bootstrap, rows))
        cfg = Settings(bootstrap=bus.broker.bootstrap)
        times = asyncio.run(measure(cfg, registry, rounds))
    best = {k: min(v) for k, v in times.items()}
    return {
        "events": len(rows),
        "log_built_s": round(built, 1),
        "replay_s": round(best["replay"], 2),
        "console_cold_s": round(best["cold"], 2),
        "console_cold_ratio": round(best["cold"] / best["replay"], 3),
        "console_warm_ms": round(best["warm"] * 1000, 1),
        "console_warm_ratio": round(best["warm"] / best["replay"], 4),
        "console_period_s": round(best["period"], 2),
        "console_period_ratio": round(best["period"] / best["replay"], 3),
    }
