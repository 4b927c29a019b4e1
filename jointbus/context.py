"""Shared CLI plumbing: settings, the local broker, keystore paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.broker import LocalBroker
from streams.settings import Settings


def settings(**overrides: Any) -> Settings:
    """Settings with CLI flags (those not None) applied over env and TOML."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)


def local_broker(cfg: Settings, port: int | None = None, data_dir: Path | None = None) -> LocalBroker:
    """The embedded broker of these settings."""
    return LocalBroker(data_dir or cfg.broker_dir, port or cfg.broker_port, heap=cfg.broker_heap)
