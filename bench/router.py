"""The router alone: how fast a worker decides a pre-filled outbox (verify, rules, inbox and
audit writes, each input acknowledged only once its outputs are written), and how fast a
router rebuilds its memory from the audit log at start — both beside bare Ed25519 verify
measured in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import bench_bus, compare
from bench.e2e import PAYLOAD
from jointbus.agents.worker import new_router, rebuild
from jointbus.processes import WorkerProcess
from jointbus.schemas.records import AuditRecord
from jointbus.streams.reader import last_value
from jointbus.streams.sdk import Publisher
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC


async def prefill(bootstrap: str, registry: Any, rings: Any, n: int) -> None:
    """``n`` rectifications in sc-zigong's outbox before any worker runs."""
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
        futures = []
        for _ in range(n):
            _, fut = await pub.submit(
                "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-yongchuan"], PAYLOAD
            )
            futures.append(fut)
        await asyncio.gather(*futures)


async def leaves(bootstrap: str) -> int:
    """The leaves of the audit log: its last record says which leaf it is."""
    last = await last_value(bootstrap, AUDIT_TOPIC)
    record = AuditRecord.model_validate_json(last) if last is not None else None
    return 0 if record is None or record.leaf is None else record.leaf + 1


async def decided(bootstrap: str, n: int, within: float = 600.0) -> float:
    """Seconds until the audit log holds ``n`` leaves (polled every 50 ms)."""
    began = time.perf_counter()
    while await leaves(bootstrap) < n:
        if time.perf_counter() - began > within:
            raise TimeoutError(f"fewer than {n} decisions after {within:.0f} s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - began


def run(n: int = 5000) -> dict[str, Any]:
    """Start a broker of its own, pre-fill, route with a fresh worker, then rebuild."""
    key = Ed25519PrivateKey.generate()
    public, message = key.public_key(), b"x" * 700
    signature = key.sign(message)
    bare = compare({"bare_verify": lambda: public.verify(signature, message)}, 3000)["bare_verify"]
    with bench_bus("jointbus-bench-router-") as bus:
        asyncio.run(prefill(bus.broker.bootstrap, bus.registry, bus.rings, n))
        bus.worker = WorkerProcess(bus.home, bus.broker.bootstrap).start()
        routing_s = asyncio.run(decided(bus.broker.bootstrap, n))
        bus.worker.stop()
        bus.worker = None
        router = new_router(Settings(bootstrap=bus.broker.bootstrap, home=bus.home), bus.registry)
        began = time.perf_counter()
        leaves = asyncio.run(rebuild(router, bus.broker.bootstrap))
        rebuild_s = time.perf_counter() - began
    routed = n / routing_s
    rebuilt = leaves / rebuild_s
    return {
        "events": n,
        "bare_verify_per_s": round(bare),
        "worker_routes_per_s": round(routed),
        "routing_ratio": round(routed / bare, 3),
        "rebuild_leaves_per_s": round(rebuilt),
        "rebuild_ratio": round(rebuilt / bare, 3),
    }
