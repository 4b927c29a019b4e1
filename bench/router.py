"""The router alone: how fast a worker decides a pre-filled outbox (verify, rules, inbox and
audit writes, each input acknowledged only once its outputs are written), and how fast a
router rebuilds its memory from the audit log at start — both beside bare Ed25519 verify
measured in the same run."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.worker import new_router, rebuild
from bench.common import compare
from bench.e2e import PAYLOAD
from jointbus.processes import WorkerProcess
from schemas.ids import utcnow
from schemas.keys import new_federation
from streams import keystore
from streams.broker import LocalBroker, free_port
from streams.provision import provision
from streams.reader import end_offset
from streams.sdk import Publisher
from streams.settings import Settings
from streams.topics import AUDIT_TOPIC


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


async def decided(bootstrap: str, n: int, within: float = 600.0) -> float:
    """Seconds until the audit topic holds ``n`` records (polled every 50 ms)."""
    began = time.perf_counter()
    while await end_offset(bootstrap, AUDIT_TOPIC) < n:
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
    with tempfile.TemporaryDirectory(prefix="jointbus-bench-router-") as tmp:
        home = Path(tmp)
        broker = LocalBroker(home / "broker", free_port(), heap="768m")
        broker.start()
        worker = None
        try:
            registry, rings = new_federation(utcnow() - timedelta(days=1))
            for ring in rings.values():
                keystore.save_keyring(home / "keys", ring)
            keystore.save_registry(home / "keys", registry)
            asyncio.run(provision(Settings(bootstrap=broker.bootstrap), registry))
            asyncio.run(prefill(broker.bootstrap, registry, rings, n))
            worker = WorkerProcess(home, broker.bootstrap).start()
            routing_s = asyncio.run(decided(broker.bootstrap, n))
            worker.stop()
            worker = None
            settings = Settings(bootstrap=broker.bootstrap, home=home)
            router = new_router(settings, registry)
            began = time.perf_counter()
            leaves = asyncio.run(rebuild(router, broker.bootstrap))
            rebuild_s = time.perf_counter() - began
        finally:
            if worker is not None:
                worker.stop()
            broker.stop()
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
