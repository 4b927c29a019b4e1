"""Shared fuzzing conventions: every reader of bus bytes registers a *target* (a function of
raw bytes that must decide and return, never raise anything but its own typed refusal), and
runs under hypothesis in the suite for a bounded number of examples.

- ``make test``: each hypothesis fuzzer runs ``examples(n)`` examples (n as written);
- ``make fuzz``: ``JOINTBUS_FUZZ_SCALE`` multiplies them, then ``python -m tests.fuzz_run``
  runs every registered target under atheris (coverage-guided, byte-level mutation of the
  target's seeds) for a while;
- a failing input is kept as a regression file, ``tests/regressions/<target>/<sha256>``,
  and ``tests/test_fuzz_regressions.py`` runs every target on every kept file, always.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings

REGRESSIONS = Path(__file__).parent / "regressions"
#: ``make fuzz`` sets this to run every hypothesis fuzzer many times longer
SCALE = max(1, int(os.environ.get("JOINTBUS_FUZZ_SCALE", "1")))


@dataclass(frozen=True)
class Target:
    """A reader under fuzzing: ``run`` decides one input; ``seeds`` are honest inputs the
    byte-level fuzzer starts from (real records, real envelopes)."""

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]] = field(default=lambda: [])


TARGETS: dict[str, Target] = {}


def fuzz_target(
    name: str, seeds: Callable[[], list[bytes]] | None = None
) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    """Register ``run(data: bytes)`` as the fuzz target ``name`` (a test module's function)."""

    def register(run: Callable[[bytes], None]) -> Callable[[bytes], None]:
        if name in TARGETS and TARGETS[name].run is not run:
            raise ValueError(f"fuzz target {name!r} registered twice")
        TARGETS[name] = Target(name, run, seeds or (lambda: []))
        return run

    return register


def examples(n: int) -> settings:
    """Hypothesis settings for a fuzzer: ``n`` examples in the suite, ``n × SCALE`` under
    ``make fuzz``; no example database (the kept regressions are the memory), no deadline."""
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def regressions(name: str) -> list[bytes]:
    """The kept failing inputs of target ``name`` (sorted, so the suite's order is stable)."""
    folder = REGRESSIONS / name
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def keep(name: str, data: bytes) -> Path:
    """Keep ``data`` as a regression input of target ``name``."""
    folder = REGRESSIONS / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha256(data).hexdigest()[:16]
    path.write_bytes(data)
    return path
