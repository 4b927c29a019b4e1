"""Timing helpers: interleaved rounds, best-of, rates."""

from __future__ import annotations

import time
from collections.abc import Callable


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
