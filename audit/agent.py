"""The audit agent: turns ``jointbus.audit`` into the Merkle tree and signs checkpoints.

Consumes the audit topic in offset order (one partition), appends every new leaf to the
index, and every N leaves or T seconds signs a checkpoint with the audit key and publishes
it to ``jointbus.checkpoints``. Before signing anything it checks that its tree agrees with
the last checkpoint it ever published, so it never signs two inconsistent checkpoints.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from jointbus.audit.errors import AuditError, InconsistentLogError
from jointbus.audit.index import TreeIndex
from jointbus.audit.merkle import leaf_hash
from jointbus.audit.notes import ORIGIN, Checkpoint, open_checkpoint, sign_checkpoint
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import AUDIT, Registry
from jointbus.streams import metrics
from jointbus.streams.clients import start_client
from jointbus.streams.reader import end_offset, read_topic
from jointbus.streams.topics import (
    AUDIT_TOPIC,
    CHECKPOINT_TOPIC,
    CONSISTENCY_FROM_HEADER,
    CONSISTENCY_PROOF_HEADER,
    CONSISTENCY_PROOFS_HEADER,
)

log = structlog.get_logger("jointbus.audit")
#: how many earlier checkpoints each checkpoint record proves consistency from
PROOFS_OFFERED = 16


def event_id_of(value: bytes) -> str | None:
    """The event id an audit record is about (None if it names none or is not JSON)."""
    try:
        record = json.loads(value)
    except ValueError:
        return None
    event_id = record.get("event_id") if isinstance(record, dict) else None
    return event_id if isinstance(event_id, str) else None


async def published_checkpoints(
    bootstrap: str, registry: Registry, **kafka: Any
) -> list[tuple[Checkpoint, str]]:
    """Every checkpoint on the checkpoints topic whose signature verifies, in topic order."""
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    found = []
    async for _, _, value in read_topic(bootstrap, CHECKPOINT_TOPIC, **kafka):
        note = value.decode("utf-8", errors="replace")
        found.append((open_checkpoint(note, public), note))
    return found


class AuditLog:
    """The running audit log of one cluster."""

    def __init__(
        self,
        bootstrap: str,
        index_path: Path,
        registry: Registry,
        audit_keys: Keyring | None,
        *,
        every_records: int = 200,
        every_seconds: float = 5.0,
        **kafka: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.index = TreeIndex(index_path)
        self.registry = registry
        self.keys = audit_keys
        self.every_records = every_records
        self.every_seconds = every_seconds
        self.kafka = kafka
        self._producer: AIOKafkaProducer | None = None
        self._last_signed = time.monotonic()

    async def start(self) -> None:
        """Catch up with the topic and check agreement with the last published checkpoint.

        Only the audit service, which holds the signing key, gets a producer (for its
        checkpoints): a reader such as the ``auditor`` principal may not write, and an
        idempotent producer would fail its start with ClusterAuthorizationFailed.
        """
        if self.keys is not None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.kafka
            )
            await start_client(self._producer, self.bootstrap, self.kafka)
        await self._check_index_matches_topic()
        await self.catch_up()
        for cp, note in await published_checkpoints(self.bootstrap, self.registry, **self.kafka):
            if cp.size > self.index.size:
                raise InconsistentLogError(
                    f"a checkpoint of size {cp.size} was published, but the log has only "
                    f"{self.index.size} leaves: the audit topic was truncated"
                )
            if self.index.root(cp.size) != cp.root:
                raise InconsistentLogError(
                    f"the published checkpoint of size {cp.size} does not match the log: "
                    "refusing to sign anything (fork or rewritten history)"
                )
            self.index.add_checkpoint(cp.size, cp.root, note)

    async def _check_index_matches_topic(self) -> None:
        """The index is derived from this topic: its last leaf must be the topic's record."""
        if self.index.size == 0:
            return
        last = self.index.size - 1
        offset = self.index.offset_of(last)
        if offset >= await end_offset(self.bootstrap, AUDIT_TOPIC, **self.kafka):
            raise InconsistentLogError(
                f"the index {self.index.path} is ahead of {AUDIT_TOPIC}: it belongs to another log or "
                "the topic was truncated; delete the index to rebuild it from the topic"
            )
        async for _, _, value in read_topic(self.bootstrap, AUDIT_TOPIC, offset, **self.kafka):
            if leaf_hash(value) != self.index.subtree(last, last + 1):
                raise InconsistentLogError(
                    f"leaf {last} of the index differs from {AUDIT_TOPIC} offset {offset}: "
                    "the topic was rewritten or the index belongs to another log"
                )
            break

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self.index.close()

    async def catch_up(self) -> int:
        """Append what the topic holds beyond the index; returns the leaves added."""
        added = 0
        batch: list[tuple[int, bytes | None, bytes, str | None]] = []
        async for offset, key, value in read_topic(
            self.bootstrap, AUDIT_TOPIC, self.index.next_offset, **self.kafka
        ):
            batch.append((offset, key, value, event_id_of(value)))
            if len(batch) >= 2000:
                added += self.index.append(batch)
                batch = []
        return added + self.index.append(batch)

    async def maybe_checkpoint(self, *, force: bool = False) -> str | None:
        """Sign and publish a checkpoint when N new leaves or T seconds have passed."""
        last = self.index.latest_checkpoint()
        last_size = last[0] if last else 0
        due = self.index.size - last_size >= self.every_records or (
            time.monotonic() - self._last_signed >= self.every_seconds
        )
        if self.index.size == last_size or not (due or force):
            return None
        return await self.checkpoint()

    async def checkpoint(self) -> str:
        """Sign the current tree head, publish it, remember it."""
        size, root = self.index.size, self.index.root()
        last = self.index.latest_checkpoint()
        if last is not None:
            if size < last[0] or self.index.root(last[0]) != last[1]:
                raise InconsistentLogError(f"the tree no longer extends checkpoint {last[0]}")
            if size == last[0]:
                return last[2]
        if self.keys is None:
            raise AuditError("only the audit service signs checkpoints", reason="no_audit_key")
        kid, key = self.keys.signer(self.registry, self.registry.issued_at)
        note = sign_checkpoint(Checkpoint(ORIGIN, size, root), key)
        if self._producer is None:
            raise AuditError("the audit log is not started")
        old = last[0] if last is not None else 0
        proof = self.index.consistency(old, size) if old else []
        recent = {  # a witness that stands at an older size finds its proof too
            str(s): [base64.b64encode(h).decode() for h in self.index.consistency(s, size)]
            for s, _ in self.index.checkpoints(PROOFS_OFFERED)
            if 0 < s < size
        }
        headers = [
            (CONSISTENCY_FROM_HEADER, str(old).encode()),
            (CONSISTENCY_PROOF_HEADER, "\n".join(base64.b64encode(h).decode() for h in proof).encode()),
            (CONSISTENCY_PROOFS_HEADER, json.dumps(recent, separators=(",", ":")).encode()),
        ]
        await self._producer.send_and_wait(
            CHECKPOINT_TOPIC, note.encode(), key=str(size).encode(), headers=headers
        )
        self.index.add_checkpoint(size, root, note)
        self._last_signed = time.monotonic()
        metrics.checkpoint_signed()
        log.info("checkpoint signed", size=size, root=root.hex()[:16], kid=kid)
        return note

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the audit topic until ``stop`` is set, signing checkpoints as they fall due."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",  # a fenced router's aborted writes are no leaves
            **self.kafka,
        )
        await consumer.start()
        try:
            tp = TopicPartition(AUDIT_TOPIC, 0)
            consumer.assign([tp])
            consumer.seek(tp, self.index.next_offset)
            while not stop.is_set():
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                records = fetched.get(tp, [])
                if records:
                    self.index.append((r.offset, r.key, r.value, event_id_of(r.value)) for r in records)
                metrics.AUDIT_LEAVES.set(self.index.size)
                high = consumer.highwater(tp)
                if high is not None:
                    metrics.AUDIT_LAG.set(max(0, high - self.index.next_offset))
                await self.maybe_checkpoint()
        finally:
            await consumer.stop()
            await self.maybe_checkpoint(force=True)
