"""Counters that fault and fuzz tests report at the end of the run (see conftest)."""

from __future__ import annotations

STATS: dict[str, int | str] = {}
