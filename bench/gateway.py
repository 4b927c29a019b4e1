"""The agency gateway: publish throughput over HTTP beside ``Publisher.publish`` (the same
events, the same concurrency, the same broker, the same run), and the latency from an HTTP
publish at one gateway to its Server-Sent Event at the recipient's gateway at 200 events/s."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from bench.common import bench_bus
from bench.e2e import PAYLOAD, offered, pct
from jointbus.gateway.client import GatewayClient
from jointbus.gateway.service import gateway_dir
from jointbus.gateway.tokens import Tokens
from jointbus.processes import GatewayProcess, WorkerProcess
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams.broker import free_port
from jointbus.streams.sdk import Publisher
from jointbus.streams.settings import Settings

SENDER, RECIPIENT = "sc-zigong", "cq-yongchuan"
CONCURRENCY = 16  # requests in flight, for both paths


async def in_flight(n: int, call: Any) -> float:
    """Events per second of ``n`` calls of ``call(i)``, ``CONCURRENCY`` at a time."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def lane() -> None:
        while not queue.empty():
            await call(queue.get_nowait())

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - began)


async def sdk_rate(bootstrap: str, registry: Registry, ring: Keyring, n: int) -> float:
    async with Publisher(SENDER, ring, registry, bootstrap) as pub:

        async def call(_: int) -> None:
            await pub.publish("rectification.issued", f"rectification/{uuid.uuid4()}", [RECIPIENT], PAYLOAD)

        return await in_flight(n, call)


async def gateway_rate(url: str, token: str, n: int) -> float:
    async with GatewayClient(url, token) as client:

        async def call(_: int) -> None:
            await client.publish("rectification.issued", [RECIPIENT], PAYLOAD)

        return await in_flight(n, call)


async def latency(
    sender: tuple[str, str], recipient: tuple[str, str], n: int, rate: float
) -> dict[str, float]:
    """HTTP publish → the recipient gateway's SSE event, paced at ``rate`` events/s."""
    sent: dict[str, float] = {}
    lat: list[float] = []
    async with GatewayClient(*sender) as out, GatewayClient(*recipient) as into:
        last = 0  # only what is new: the stream starts after the inbox's last cursor
        while page := (await into.inbox(after=last, limit=500))["items"]:
            last = page[-1]["cursor"]

        async def read() -> None:
            async for item in into.stream(last_event_id=str(last)):
                began = sent.pop(item["subject"], None)  # known before the POST returns
                if began is not None:
                    lat.append(time.perf_counter() - began)
                    if len(lat) >= n:
                        return

        reader = asyncio.create_task(read())

        async def send(_: int) -> None:
            subject = f"rectification/{uuid.uuid4()}"
            sent[subject] = time.perf_counter()
            await out.publish("rectification.issued", [RECIPIENT], PAYLOAD, subject=subject)

        await offered(send, n, rate)
        await asyncio.wait_for(reader, 120)
    return {"p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * pct(lat, 99)}


def run(n: int = 1500, rate: float = 200.0, paced_seconds: float = 10.0) -> dict[str, Any]:
    """A broker, a worker and the two agencies' gateways of its own; both paths measured."""
    with bench_bus("jointbus-bench-gateway-") as bus:
        bus.worker = WorkerProcess(bus.home, bus.broker.bootstrap).start()
        cfg = Settings(home=bus.home)
        running: list[GatewayProcess] = []
        try:
            ends = {}
            for agency in (SENDER, RECIPIENT):
                token = Tokens(gateway_dir(cfg, agency) / "tokens.json").add(
                    "bench", ("publish", "inbox", "read")
                )
                limits = ("--rate", "100000", "--burst", "100000")  # measure the gateway, not its limiter
                proc = GatewayProcess(bus.home, bus.broker.bootstrap, agency, free_port(), *limits).start()
                running.append(proc)
                ends[agency] = (proc.url, token)
            boot, reg, ring = bus.broker.bootstrap, bus.registry, bus.rings[SENDER]
            asyncio.run(gateway_rate(*ends[SENDER], 200))  # warm-up of both paths
            asyncio.run(sdk_rate(boot, reg, ring, 200))
            sdk = max(asyncio.run(sdk_rate(boot, reg, ring, n)) for _ in range(2))
            http = max(asyncio.run(gateway_rate(*ends[SENDER], n)) for _ in range(2))
            paced = asyncio.run(latency(ends[SENDER], ends[RECIPIENT], int(rate * paced_seconds), rate))
            half = asyncio.run(
                latency(ends[SENDER], ends[RECIPIENT], int(rate * paced_seconds / 2), rate / 2)
            )
        finally:
            for proc in running:
                proc.stop()
    return {
        "concurrency": CONCURRENCY,
        "sdk_publish_per_s": round(sdk),
        "gateway_publish_per_s": round(http),
        "gateway_vs_sdk": round(http / sdk, 3),
        "offered_per_s": rate,
        "http_to_sse_p50_ms": round(paced["p50_ms"], 1),
        "http_to_sse_p99_ms": round(paced["p99_ms"], 1),
        "at_half_rate_p50_ms": round(half["p50_ms"], 1),
        "at_half_rate_p99_ms": round(half["p99_ms"], 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
