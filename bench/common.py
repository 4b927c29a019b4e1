"""Timing helpers: interleaved rounds, best-of, rates."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from jointbus.processes import WorkerProcess
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.streams import keystore
from jointbus.streams.broker import LocalBroker, free_port
from jointbus.streams.provision import provision
from jointbus.streams.settings import Settings

#: obligations open per pair on a benchmark's federation: a benchmark sends thousands of
#: events between one pair, as a load test, not as agencies at work (the limit's own cost is
#: part of every decision either way)
OPEN_PER_PAIR = 100_000


def rate(fn: Callable[[], object], n: int) -> float:
    """Calls per second of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def compare(pairs: dict[str, Callable[[], object]], n: int, rounds: int = 7) -> dict[str, float]:
    """Best rate of each callable over ``rounds`` interleaved rounds (noise hits all alike)."""
    best = dict.fromkeys(pairs, 0.0)
    for _ in range(rounds):
        for name, fn in pairs.items():
            best[name] = max(best[name], rate(fn, n))
    return best


@contextlib.contextmanager
def bench_bus(prefix: str) -> Iterator[Bench]:
    """A broker of its own in a temporary folder, a development federation saved there and
    its topics provisioned; stopped (with any worker set on it) on exit."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp)
        broker = LocalBroker(home / "broker", free_port(), heap="768m")
        broker.start()
        bench = Bench(home, broker)
        try:
            bench.registry, bench.rings = new_federation(
                utcnow() - timedelta(days=1), open_per_pair=OPEN_PER_PAIR
            )
            for ring in bench.rings.values():
                keystore.save_keyring(home / "keys", ring)
            keystore.save_registry(home / "keys", bench.registry)
            asyncio.run(provision(Settings(bootstrap=broker.bootstrap), bench.registry))
            yield bench
        finally:
            if bench.worker is not None:
                bench.worker.stop()
            broker.stop()


@dataclass
class Bench:
    """What a benchmark's own bus consists of."""

    home: Path
    broker: LocalBroker
    registry: Any = None
    rings: Any = None
    worker: WorkerProcess | None = None
