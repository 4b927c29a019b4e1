"""Shared CLI plumbing: settings, the local broker, keystore paths."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from jointbus.streams.broker import LocalBroker
from jointbus.streams.keystore import private_dir
from jointbus.streams.security import ADMIN, kafka_kwargs, load_credentials
from jointbus.streams.settings import Settings


def settings(**overrides: Any) -> Settings:
    """Settings with CLI flags (those not None) applied over env and TOML."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    cfg = Settings(**given)
    if "security_protocol" not in given and "JOINTBUS_SECURITY_PROTOCOL" not in os.environ:
        state = LocalBroker(cfg.broker_dir, cfg.broker_port).state() if cfg.uses_local_broker else None
        if state is not None and state.secure:  # the local broker was started secured
            cfg = cfg.model_copy(update={"security_protocol": "SASL_PLAINTEXT"})
    return cfg


def local_broker(cfg: Settings, port: int | None = None, data_dir: Path | None = None) -> LocalBroker:
    """The embedded broker of these settings (secured when JOINTBUS_SECURITY_PROTOCOL says so).

    Secured, it knows the ``admin`` user only: it is formatted with it, and provisioning
    (``streams.provision``) adds every other principal the registry implies."""
    directory = data_dir or cfg.broker_dir
    state = LocalBroker(directory, port or cfg.broker_port).state()
    secure = state.secure if state is not None else cfg.secure  # the data decides once it exists
    users = {ADMIN: load_credentials(cfg.credentials_dir, ADMIN)} if secure else None
    return LocalBroker(
        data_dir or cfg.broker_dir, port or cfg.broker_port, heap=cfg.broker_heap, scram_users=users
    )


def kafka(cfg: Settings, principal: str) -> dict[str, Any]:
    """Client arguments for ``principal`` (empty in plaintext mode)."""
    return kafka_kwargs(cfg, principal)


def protect_home(cfg: Settings) -> None:
    """Tighten the local state folder and its data folders (broker, keys, worker, inbox,
    audit) to 0700 when they exist: folders an older version or another tool created with
    the default umask become private. Creates nothing."""
    if not cfg.home.is_dir():
        return
    with contextlib.suppress(OSError):  # not ours to change: the command itself may still work
        private_dir(cfg.home)
        for folder in cfg.home.iterdir():
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o700)
