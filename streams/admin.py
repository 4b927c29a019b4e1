"""The admin client every provisioning step shares (streams/provision.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from jointbus.streams.clients import start_client
from jointbus.streams.errors import KafkaAuthorizationError, StreamsError

#: the Kafka error code of an admin request the principal may not make
CLUSTER_AUTHORIZATION_FAILED = 31


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str, **kafka: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit (a refused start is a typed error)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka)
    await start_client(admin, bootstrap, kafka)
    try:
        yield admin
    finally:
        await admin.close()


def check_admin_answer(code: int, message: str | None, what: str, reason: str) -> None:
    """Raise for an error code in the answer to an admin request made with hand-written wire
    structs (aiokafka has no client for it): not authorized, or ``reason`` otherwise."""
    if code == CLUSTER_AUTHORIZATION_FAILED:
        raise KafkaAuthorizationError(f"{what}: the principal may not alter the cluster ({message})")
    if code:
        raise StreamsError(f"{what} failed (Kafka error {code}): {message}", reason=reason)
