"""The faust application of the bus: settings that keep delivery at-least-once and safe.

- ``processing_guarantee="at_least_once"``: faust's exactly-once has open bugs
  (docs/architecture.md, Delivery).
- Every producer is idempotent with ``acks=all`` (faust only does that inside transactions,
  so the transport below asks for it always).
- faust flushes the producer before it commits offsets, so an output is on the broker
  before its input counts as done.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.auth import SASLMechanism

from jointbus.streams.keystore import private_dir
from jointbus.streams.security import load_credentials
from jointbus.streams.settings import Settings


class IdempotentProducer(faust_aiokafka.Producer):
    """faust's aiokafka producer with idempotence and acks=all, always."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the idempotent producer."""

    Producer = IdempotentProducer


TRANSPORTS.aliases["jointbus"] = "jointbus.streams.faustapp:Transport"


def broker_url(bootstrap: str) -> str:
    """faust's broker URL for comma-separated bootstrap servers."""
    return ";".join(f"jointbus://{host.strip()}" for host in bootstrap.split(","))


def make_app(settings: Settings, app_id: str, principal: str | None = None) -> faust.App:
    """A faust app for ``app_id`` on the configured cluster (as ``principal`` when secured)."""
    private_dir(settings.worker_dir)
    auth: dict[str, Any] = {}
    if settings.secure and principal is not None:
        cred = load_credentials(settings.credentials_dir, principal)
        auth["broker_credentials"] = faust.SASLCredentials(
            username=cred.username, password=cred.password, mechanism=SASLMechanism.SCRAM_SHA_512
        )
    return faust.App(
        app_id,
        broker=broker_url(settings.bootstrap_servers),
        store="memory://",
        datadir=str(settings.worker_dir / app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_linger=0.002,
        broker_commit_interval=settings.worker_commit_interval,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        # static membership: a worker restarted after a crash takes its partitions back at
        # once instead of waiting for the dead member's session to expire
        consumer_group_instance_id=settings.worker_instance_id or f"{socket.gethostname()}-{app_id}",
        broker_session_timeout=8.0,
        broker_heartbeat_interval=2.0,
        **auth,
    )
