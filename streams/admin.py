"""The admin client every provisioning step shares (streams/provision.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from jointbus.streams.clients import start_client


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str, **kafka: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit (a refused start is a typed error)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka)
    await start_client(admin, bootstrap, kafka)
    try:
        yield admin
    finally:
        await admin.close()
