"""`jointbus quotas`: the per-agency Kafka client quotas of the registry in force.

The operator holds the ``admin`` credential, the only principal allowed to alter quotas;
no bus process does. Provisioning (`broker start`, `topics create`) sets them, and after a
governance ``policy.changed`` comes into force, `jointbus quotas apply` sets the new figures
(it follows ``jointbus.registry`` as agencies do, so it applies the version the log brought
into force, not a local copy).
"""

from __future__ import annotations

import asyncio

import click

from jointbus import context, ui
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.admin import admin_client
from jointbus.streams.quotas import CONSUME, PRODUCE, REQUESTS, apply_quotas, describe_quotas, quotas_of
from jointbus.streams.registry_feed import follow
from jointbus.streams.security import ADMIN
from jointbus.streams.settings import Settings


@click.group("quotas")
def quotas_group() -> None:
    """Per-agency Kafka quotas (produce and fetch byte rates, request time), from the registry's policy."""


async def _in_force(cfg: Settings) -> Registry:
    if not cfg.secure:
        raise JointbusError(
            "quotas are per Kafka user: this bus runs without authentication (PLAINTEXT)", reason="usage"
        )
    local = keystore.load_registry(cfg.keystore_dir)
    return await follow(local, cfg.bootstrap_servers, **context.kafka(cfg, ADMIN))


@quotas_group.command("apply")
def quotas_apply() -> None:
    """Give every member agency the quotas of the registry version in force (run after a
    governance policy change; provisioning does it too)."""
    cfg = context.settings()

    async def go() -> tuple[Registry, dict[str, float]]:
        registry = await _in_force(cfg)
        async with admin_client(cfg.bootstrap_servers, **context.kafka(cfg, ADMIN)) as admin:
            return registry, await apply_quotas(admin, registry)

    registry, values = asyncio.run(go())
    ui.say(
        f"quotas of registry v{registry.version} applied to {len(registry.agencies)} agencies: "
        f"{values[PRODUCE]:,.0f} B/s in, {values[CONSUME]:,.0f} B/s out, {values[REQUESTS]:g}% of a thread"
    )


@quotas_group.command("show")
def quotas_show() -> None:
    """The quotas the cluster holds per agency, beside what the registry in force asks."""
    cfg = context.settings()

    async def go() -> tuple[Registry, dict[str, dict[str, float]]]:
        registry = await _in_force(cfg)
        async with admin_client(cfg.bootstrap_servers, **context.kafka(cfg, ADMIN)) as admin:
            return registry, {a: await describe_quotas(admin, a) for a in registry.agencies}

    registry, held = asyncio.run(go())
    wanted = quotas_of(registry.policy)
    keys = (PRODUCE, CONSUME, REQUESTS)
    rows = [
        [agency, *(f"{v[k]:,.0f}" if k in v else "none" for k in keys), "yes" if v == wanted else "NO"]
        for agency, v in held.items()
    ]
    ui.table(
        f"Kafka quotas on {cfg.bootstrap_servers} (registry v{registry.version} asks "
        + ", ".join(f"{k} {wanted[k]:,.0f}" for k in keys)
        + ")",
        ["agency", "produce B/s", "consume B/s", "request %", "as the registry asks"],
        rows,
    )
