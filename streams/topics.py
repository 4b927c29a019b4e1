"""The topic layout of docs/architecture.md and its idempotent creation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from jointbus.schemas.records import OUTBOX_PREFIX
from jointbus.streams.errors import ConfigError

AUDIT_TOPIC = "jointbus.audit"
CHECKPOINT_TOPIC = "jointbus.checkpoints"
REGISTRY_TOPIC = "jointbus.registry"
#: each agency's witness publishes its cosignatures of audit checkpoints to a topic of its
#: own, this prefix plus the agency id (only that agency may write it; docs/witnesses.md)
COSIGNATURE_PREFIX = "jointbus.cosignatures."
#: Kafka headers of a checkpoint record: the size of the checkpoint before it and the
#: consistency proof from that one (RFC 9162 hashes, base64, one per line)
CONSISTENCY_FROM_HEADER = "jointbus-consistency-from"
CONSISTENCY_PROOF_HEADER = "jointbus-consistency-proof"
#: ... and proofs from each of its recent predecessors, JSON ``{"<size>": [hash, ...]}``: a
#: witness that stands at an older size (it refused or missed one) still finds its proof
CONSISTENCY_PROOFS_HEADER = "jointbus-consistency-proofs"
DAYS = 24 * 3600 * 1000


def outbox(agency: str) -> str:
    """The topic an agency publishes to; only the router reads it."""
    return OUTBOX_PREFIX + agency


def inbox(agency: str) -> str:
    """The topic the router delivers an agency's events to; only that agency reads it."""
    return f"jointbus.inbox.{agency}"


def cosignature_topic(agency: str) -> str:
    """The topic ``agency``'s witness publishes its cosignatures to; only it writes there."""
    return COSIGNATURE_PREFIX + agency


@dataclass(frozen=True)
class TopicSpec:
    """A topic with its partition count and configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def layout(
    agencies: Iterable[str], partitions: int = 3, retention_days: int = 30, min_isr: int = 1
) -> list[TopicSpec]:
    """Every topic jointbus needs: outbox, inbox and witness cosignatures per agency, audit,
    checkpoints, registry."""
    kept = {"retention.ms": str(retention_days * DAYS), "min.insync.replicas": str(min_isr)}
    # the broker stamps every outbox record with its arrival: every time rule (window,
    # revocation, deadlines) is judged against it, so no producer may choose it
    arrival = {**kept, "message.timestamp.type": "LogAppendTime"}
    forever = {"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": str(min_isr)}
    specs: list[TopicSpec] = []
    for agency in agencies:
        specs += [
            TopicSpec(outbox(agency), partitions, arrival),
            TopicSpec(inbox(agency), partitions, kept),
            TopicSpec(cosignature_topic(agency), 1, forever),
        ]
    specs += [
        TopicSpec(AUDIT_TOPIC, 1, forever),
        TopicSpec(CHECKPOINT_TOPIC, 1, forever),
        TopicSpec(REGISTRY_TOPIC, 1, {**forever, "cleanup.policy": "compact"}),
    ]
    return specs


async def ensure_topics(
    admin: AIOKafkaAdminClient, specs: Iterable[TopicSpec], replication: int = 1
) -> list[str]:
    """Create the topics that do not exist yet and give existing ones the configuration of
    their spec (e.g. an outbox made before it had to be LogAppendTime); returns the names
    created."""
    specs = list(specs)
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    present = [s for s in specs if s.name in existing and s.configs]
    if present:
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.configs) for s in present]
        )
        for response in responses:
            for error_code, message, _, name in response.resources:
                if error_code:
                    raise ConfigError(f"topic {name} keeps its old configuration: {message or error_code}")
    if not missing:
        return []
    with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
        await admin.create_topics(
            [NewTopic(s.name, s.partitions, replication, topic_configs=s.configs) for s in missing]
        )
    return [s.name for s in missing]


#: the Kafka header on each inbox delivery naming the registry version it was decided under
REGISTRY_VERSION_HEADER = "jointbus-registry-version"


def registry_header(version: int) -> tuple[str, bytes]:
    """The header that tells a recipient which registry version to verify a delivery under."""
    return (REGISTRY_VERSION_HEADER, str(version).encode())


def registry_version_of(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The registry version a delivery names (None: an older router, or none given)."""
    for name, value in headers or ():
        if name == REGISTRY_VERSION_HEADER and value.isdigit() and len(value) <= 9:
            return int(value)
    return None
