"""An agency's witness of the audit log: it cosigns checkpoints it has checked, never two
that contradict each other.

Whoever runs the bus holds the audit key and could show one history to some agencies and
another to the rest, or rewrite the log and sign it again. Each agency's witness follows
``jointbus.checkpoints`` and, for each checkpoint:

- checks it is signed by the audit service's key (``bad_checkpoint_signature``);
- compares it with the last checkpoint it cosigned, kept durably on the agency's side: a
  smaller size is a rollback (``rollback``), the same size with another root a split view
  (``equivocation``), a larger size must come with a consistency proof from the size the
  witness holds (``no_proof``) that verifies (``inconsistent``);
- then cosigns it (C2SP ``tlog-cosignature``, ``audit.cosign``) and publishes the cosigned
  note to its own topic, ``jointbus.cosignatures.<agency>``, after saving its new state.

It also reads the other witnesses' topics (each record cut by ``audit.cosigned.owned_note``
to what that topic's owner vouches for): a note of a size it cosigned with another root is
a split view too. A refusal leaves its state as it was and becomes an alert event
to every agency (``log.equivocation`` with both signed notes, else ``log.witness_refused``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jointbus.audit.cosign import cosign, signature_lines, with_cosignatures, witness_name
from jointbus.audit.cosigned import owned_note
from jointbus.audit.errors import AuditError
from jointbus.audit.merkle import verify_consistency
from jointbus.audit.notes import ORIGIN, Checkpoint
from jointbus.schemas.checkpoints import MAX_NOTE
from jointbus.schemas.families.log import audit_checkpoint
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams import metrics
from jointbus.streams.clients import start_client
from jointbus.streams.topics import (
    CHECKPOINT_TOPIC,
    CONSISTENCY_FROM_HEADER,
    CONSISTENCY_PROOF_HEADER,
    CONSISTENCY_PROOFS_HEADER,
    cosignature_topic,
)

log = structlog.get_logger("jointbus.witness")

#: how many cosigned checkpoints a witness keeps to compare with others' cosignatures
HISTORY = 256


class WitnessRefusedError(AuditError):
    """A checkpoint the witness will not cosign: ``reason`` says why; ``note`` is the
    refused checkpoint, ``against`` the cosigned one it contradicts (if any)."""

    def __init__(self, message: str, *, reason: str, note: str, against: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.note = note
        self.against = against


@dataclass
class WitnessState:
    """What a witness keeps between runs: the last checkpoint it cosigned, the topic
    offsets it has read up to, and the roots of the sizes it cosigned recently."""

    size: int = 0
    root: str = ""  # base64
    note: str = ""
    offsets: dict[str, int] = field(default_factory=dict)
    history: dict[str, str] = field(default_factory=dict)  # size → the checkpoint note cosigned

    @classmethod
    def load(cls, path: Path) -> WitnessState:
        """The saved state, or a fresh one when the witness never ran."""
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise AuditError(f"witness state {path} is unreadable: {exc}", reason="bad_state") from None

    def save(self, path: Path) -> None:
        """Write atomically and durably: a cosignature is published only after this."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(self.__dict__, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)  # the rename itself durable too
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Witness:
    """The checks and the cosigning of one agency's witness, without Kafka."""

    def __init__(self, agency: str, key: Ed25519PrivateKey, registry: Registry, state: WitnessState) -> None:
        self.agency = agency
        self.name = witness_name(agency)
        self.key = key
        self.registry = registry
        self.state = state
        #: records of the topics read that were no checkpoint or cosigned note (not kept)
        self.passed_over = 0

    @classmethod
    def of(cls, ring: Keyring, registry: Registry, state: WitnessState) -> Witness:
        _, key = ring.witness(registry, registry.issued_at)
        return cls(ring.owner, key, registry, state)

    def checkpoint(self, note: str) -> Checkpoint:
        """``note`` as a checkpoint signed by the audit key, else a refusal."""
        found = audit_checkpoint(note, self.registry, datetime.now(UTC))
        if found is None:
            raise WitnessRefusedError(
                "the checkpoint is not signed by the audit service's key (or by one since revoked), "
                "or is not of the log's form",
                reason="bad_checkpoint_signature",
                note=evidence(note),
            )
        return found

    def observe(self, note: str, old: int, proof: Sequence[bytes], now: int | None = None) -> str:
        """Check ``note`` (with a consistency proof from size ``old``) against what this
        witness cosigned; its cosigned note when it holds, else ``WitnessRefusedError``. The
        state changes only on success (the caller saves it before publishing)."""
        cp = self.checkpoint(note)
        held = self.state
        root = base64.b64encode(cp.root).decode()

        def refused(reason: str, why: str) -> WitnessRefusedError:
            return WitnessRefusedError(why, reason=reason, note=evidence(note), against=held.note)

        if cp.size < held.size:
            raise refused(
                "rollback", f"size {cp.size} is below the {held.size} this witness cosigned (a rollback)"
            )
        if cp.size == held.size and held.size > 0:
            if root != held.root:
                raise refused("equivocation", f"a second root for size {cp.size} (a split view)")
        elif held.size > 0:
            if old != held.size:
                raise refused(
                    "no_proof",
                    f"the checkpoint proves consistency from size {old}, this witness holds {held.size}",
                )
            if not verify_consistency(held.size, cp.size, base64.b64decode(held.root), cp.root, list(proof)):
                raise refused(
                    "inconsistent", f"size {cp.size} does not extend the {held.size} this witness cosigned"
                )
        line = cosign(cp, self.key, self.name, int(time.time()) if now is None else now)
        history = {**held.history, str(cp.size): evidence(note)}
        if len(history) > HISTORY:
            history = dict(sorted(history.items(), key=lambda kv: int(kv[0]))[-HISTORY:])
        self.state = WitnessState(cp.size, root, evidence(note), dict(held.offsets), history)
        return with_cosignatures(note, [line])

    def compare(self, cosigned: str) -> None:
        """Another witness's cosigned note: a size this witness cosigned with another root
        is a split view (``equivocation``); anything unverifiable is ignored."""
        cp = audit_checkpoint(cosigned, self.registry)
        if cp is None:
            return
        mine = self.state.history.get(str(cp.size))
        if mine is not None and _root_line(mine) != base64.b64encode(cp.root).decode():
            raise WitnessRefusedError(
                f"another witness cosigned a second root for size {cp.size} (a split view)",
                reason="equivocation",
                note=evidence(cosigned),
                against=mine,
            )


def _root_line(note: str) -> str:
    lines = note.split("\n")
    return lines[2] if len(lines) > 2 else ""


def evidence(note: str) -> str:
    """``note`` cut to what proves it: its body and the audit service's signature lines
    (others' lines, or padding, could push an alert past its size limit and silence it)."""
    body, _, _ = note.partition("\n\n")
    audit_lines = [line for line in signature_lines(note) if line.startswith(f"— {ORIGIN} ")][:4]
    return (body[:400] + "\n\n" + "".join(f"{line}\n" for line in audit_lines))[:MAX_NOTE]


def proof_of(headers: Sequence[tuple[str, bytes]] | None, held: int = 0) -> tuple[int, list[bytes]]:
    """The consistency proof a checkpoint record carries from size ``held`` (the record
    offers proofs from its recent predecessors), else the one from its predecessor; size 0
    and none when absent."""
    found = dict(headers or ())
    try:
        offered = json.loads(found.get(CONSISTENCY_PROOFS_HEADER, b"{}"))
        if isinstance(offered, dict) and isinstance(offered.get(str(held)), list) and held > 0:
            return held, [base64.b64decode(h, validate=True) for h in offered[str(held)]]
        old = int(found.get(CONSISTENCY_FROM_HEADER, b"0"))
        lines = found.get(CONSISTENCY_PROOF_HEADER, b"").decode().split("\n")
        return old, [base64.b64decode(line, validate=True) for line in lines if line]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return -1, []


Alert = Callable[[WitnessRefusedError], Awaitable[None]]


async def run_witness(
    witness: Witness,
    state_path: Path,
    bootstrap: str,
    stop: asyncio.Event,
    alert: Alert,
    *,
    refresh: Callable[[], Awaitable[Registry]] | None = None,
    on_cosigned: Callable[[str], None] | None = None,
    **kafka: Any,
) -> None:
    """Follow the checkpoints (and the other witnesses' cosignatures) until ``stop``:
    cosign what holds, alert on what does not. Resumes from the offsets in its state. No
    record stops it: one it cannot read is logged and passed, its offset kept. ``refresh``
    gives the registry in force (a checkpoint signed by a new audit key is tried again with
    it before it is refused)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **kafka)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **kafka)
    await start_client(consumer, bootstrap, kafka)
    await start_client(producer, bootstrap, kafka)
    checkpoints = TopicPartition(CHECKPOINT_TOPIC, 0)
    own = cosignature_topic(witness.agency)
    # every other member's witness topic (the registry's members when it starts)
    others = {
        cosignature_topic(agency): agency for agency in witness.registry.agencies if agency != witness.agency
    }
    bound = log.bind(agency=witness.agency, witness=witness.name)

    async def checkpoint(text: str, headers: Any) -> None:
        try:
            cosigned = witness.observe(text, *proof_of(headers, witness.state.size))
        except WitnessRefusedError as refusal:
            if refusal.reason != "bad_checkpoint_signature" or refresh is None:
                raise
            witness.registry = await refresh()  # a rotated audit key: the registry moved on
            cosigned = witness.observe(text, *proof_of(headers, witness.state.size))
        witness.state.save(state_path)  # durable before it is published
        await producer.send_and_wait(own, cosigned.encode(), key=witness.agency.encode())
        bound.info("checkpoint cosigned", size=witness.state.size)
        metrics.WITNESS_SIZE.labels(witness.agency).set(witness.state.size)
        if on_cosigned is not None:
            on_cosigned(cosigned)

    try:
        partitions = [checkpoints, *(TopicPartition(topic, 0) for topic in others)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, witness.state.offsets.get(tp.topic, 0))
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=300, max_records=500)
            for tp, records in sorted(fetched.items(), key=lambda kv: kv[0].topic):
                for record in records:
                    witness.state.offsets[tp.topic] = record.offset + 1
                    if tp.topic == CHECKPOINT_TOPIC:
                        ok = record.value is not None and len(record.value) <= MAX_NOTE
                        text = record.value.decode("utf-8", errors="replace") if ok else None
                    else:  # only what that topic's witness vouches for, bounded
                        text = owned_note(others.get(tp.topic, ""), record.value)
                    if text is None:
                        witness.passed_over += 1
                        bound.warning(
                            "record passed over",
                            topic=tp.topic,
                            offset=record.offset,
                            count=witness.passed_over,
                        )
                        continue
                    try:
                        if tp.topic == CHECKPOINT_TOPIC:
                            await checkpoint(text, record.headers)
                        else:
                            witness.compare(text)
                    except WitnessRefusedError as refusal:
                        bound.warning("checkpoint refused", why=refusal.reason, detail=refusal.message)
                        metrics.WITNESS_REFUSALS.labels(witness.agency, refusal.reason).inc()
                        try:
                            await alert(refusal)
                        except Exception:  # the refusal stands; the alert is logged, not lost silently
                            bound.exception("alert not sent", why=refusal.reason, note=refusal.note)
                    except Exception:  # a record no rule foresaw must not stop the witness
                        bound.exception("record not handled", topic=tp.topic, offset=record.offset)
            if fetched:
                witness.state.save(state_path)
    finally:
        await consumer.stop()
        await producer.stop()
