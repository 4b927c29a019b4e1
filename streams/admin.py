"""Cluster set-up shared by the CLI, the demo and the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from schemas.registry import AGENCY_IDS
from streams.clients import start_client
from streams.settings import Settings
from streams.topics import ensure_topics, layout


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str, **kafka: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit (a refused start is a typed error)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka)
    await start_client(admin, bootstrap, kafka)
    try:
        yield admin
    finally:
        await admin.close()


async def provision_topics(settings: Settings, bootstrap: str | None = None, **kafka: Any) -> list[str]:
    """Create the topics of docs/architecture.md that are missing; returns those created."""
    min_isr = 2 if settings.replication >= 3 else 1
    specs = layout(AGENCY_IDS, settings.partitions, min_isr=min_isr)
    async with admin_client(bootstrap or settings.bootstrap_servers, **kafka) as admin:
        return await ensure_topics(admin, specs, settings.replication)
