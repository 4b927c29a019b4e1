"""Completeness: every outbox record has exactly one decision leaf in the audit log.

The verifier already proves each decision right and each partition's decisions one
unbroken chain; this compares the chain with the outboxes themselves, position by
position, so a record the router never decided (or whose decision never reached the log)
is named. Records younger than a grace period may still be on their way through the
router: they are reported as pending, not missing.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from jointbus.audit.errors import AuditFailure, VerificationError
from jointbus.schemas.records import input_digests

#: how long a record may wait for its decision before its absence is a failure
GRACE_MS = 60_000


class OutboxRow(NamedTuple):
    """What an auditor knows of one outbox record without keeping its bytes."""

    offset: int
    timestamp_ms: int
    appended: bool  # the broker set the timestamp (LogAppendTime)
    digests: frozenset[str]  # see schemas.records.input_digests


@dataclass
class Completeness:
    """What the comparison covered."""

    positions: int = 0
    decided: int = 0
    pending: int = 0


async def outbox_records(
    bootstrap: str, topics: Iterable[str], *, timeout_ms: int = 1000, **kafka: Any
) -> dict[str, list[OutboxRow]]:
    """Every record now in ``topics`` (offset, timestamp, whether the broker set it, the
    digests of its value), by ``topic:partition``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=16 * 1024 * 1024,
        **kafka,
    )
    await consumer.start()
    found: dict[str, list[OutboxRow]] = {}
    try:
        tps = []
        for topic in topics:
            partitions = await _partitions(consumer, topic)
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return found
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found[f"{tp.topic}:{tp.partition}"] = []
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=timeout_ms, max_records=10_000)
            for tp, records in batch.items():
                rows = found[f"{tp.topic}:{tp.partition}"]
                rows += [
                    OutboxRow(r.offset, r.timestamp, r.timestamp_type == 1, input_digests(r.value))
                    for r in records
                    if r.offset < ends[tp]
                ]
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return set(partitions or ())


def check_complete(
    decided: Mapping[str, Container[int]],
    outboxes: Mapping[str, list[OutboxRow]],
    *,
    now_ms: int,
    grace_ms: int = GRACE_MS,
) -> Completeness:
    """Compare decisions with outbox records; raise ``missing_decision`` naming the first
    outbox position without a decision that is older than ``grace_ms``, and
    ``untrusted_time`` for a record whose timestamp its producer chose (every time rule the
    router applied is judged against that timestamp)."""
    result = Completeness()
    for stream in sorted(outboxes):
        mine: Container[int] = decided.get(stream, ())
        for offset, appended_ms, appended, _ in outboxes[stream]:
            result.positions += 1
            if not appended:
                raise VerificationError(
                    f"{stream}:{offset} carries a time its producer chose (the outbox is not "
                    "LogAppendTime): the arrival times the decisions rest on cannot be trusted",
                    index=None,
                    why=AuditFailure.UNTRUSTED_TIME,
                )
            if offset in mine:
                result.decided += 1
            elif now_ms - appended_ms < grace_ms:
                result.pending += 1
            else:
                raise VerificationError(
                    f"{stream}:{offset} has no decision in the audit log "
                    f"(appended {(now_ms - appended_ms) / 1000:.0f} s ago)",
                    index=None,
                    why=AuditFailure.MISSING_DECISION,
                )
    return result
