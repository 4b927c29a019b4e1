"""The deadline monitor's tick: its cost with 1,000 and with 100,000 open deadlines (it
should not grow: the monitor looks only at those that passed), beside the cost of scanning
every open deadline once, the way the monitor worked before the index."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from bench.common import OPEN_PER_PAIR
from jointbus.agents.routing import Router
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import ROUTER


def tick_cost(open_deadlines: int, ticks: int = 2000) -> tuple[float, float]:
    """Microseconds per monitor tick (ten deadlines passing each tick among the open ones),
    and per full scan of them."""
    now = utcnow()
    registry, rings = new_federation(now - timedelta(days=1), open_per_pair=OPEN_PER_PAIR)
    router = Router(registry, rings[ROUTER], Rules())
    for i in range(open_deadlines):
        router.dues.set(f"clue/open-{i}", now + timedelta(days=3, seconds=i))
    start = time.perf_counter()
    for t in range(ticks):
        for j in range(10):  # ten fall due this tick (no aggregate: nothing to alert)
            router.dues.set(f"clue/due-{t}-{j}", now - timedelta(seconds=1))
        router.overdue(now)
    per_tick = (time.perf_counter() - start) / ticks * 1e6
    start = time.perf_counter()
    for _ in range(10):
        sum(1 for s in router.dues if router.dues[s] <= now)
    per_scan = (time.perf_counter() - start) / 10 * 1e6
    return per_tick, per_scan


def run() -> dict[str, Any]:
    small, small_scan = tick_cost(1_000)
    large, large_scan = tick_cost(100_000)
    return {
        "tick_us_1k_open": round(small, 1),
        "tick_us_100k_open": round(large, 1),
        "tick_growth_1k_to_100k": round(large / small, 2),
        "full_scan_us_1k_open": round(small_scan, 1),
        "full_scan_us_100k_open": round(large_scan, 1),
    }
