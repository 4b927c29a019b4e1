"""The audit agent on the real broker: index rebuilt to the same root, proofs that verify
offline, and a log that refuses to sign when its history was rewritten."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from jointbus.audit.agent import AuditLog, event_id_of
from jointbus.audit.errors import InconsistentLogError
from jointbus.audit.notes import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import AUDIT
from jointbus.streams.broker import LocalBroker
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC, CHECKPOINT_TOPIC
from tests.conftest import Bus, _broker
from tests.harness import collect, eventually, make_federation
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker


async def some_traffic(bus: Bus) -> str:
    subject = f"rectification/{uuid.uuid4()}"
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        event_id = await pub.publish(
            "rectification.issued", subject, ["cq-yongchuan"], SAMPLES["rectification.issued"]
        )
    await collect(
        "cq-yongchuan", bus.rings["cq-yongchuan"], bus.registry, bus.bootstrap, lambda d: d.id == event_id, 1
    )

    async def audited() -> bool | None:  # delivered; its audit record may be on its way still
        return True if await audit_has(bus, event_id) else None

    await eventually(audited, within=30, what=f"the audit record of {event_id}")
    return event_id


async def audit_has(bus: Bus, event_id: str) -> bool:
    async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
        if event_id_of(value) == event_id:
            return True
    return False


async def test_deleted_index_is_rebuilt_to_the_same_root(bus: Bus, tmp_path: Path) -> None:
    """The index is derived: a fresh one built from the topic has the same size and root."""
    await some_traffic(bus)
    first = AuditLog(bus.bootstrap, tmp_path / "a.sqlite", bus.registry, bus.rings[AUDIT])
    await first.start()
    size, root = first.index.size, first.index.root()
    await first.stop()
    (tmp_path / "a.sqlite").unlink()
    rebuilt = AuditLog(bus.bootstrap, tmp_path / "a.sqlite", bus.registry, None)
    await rebuilt.start()
    assert rebuilt.index.size >= size > 0
    assert rebuilt.index.root(size) == root
    await rebuilt.stop()


async def test_prove_and_check_proof_offline(bus: Bus, tmp_path: Path) -> None:
    """`audit prove` writes a tlog-proof that `audit check-proof` accepts; an edited one fails."""
    event_id = await some_traffic(bus)
    log = AuditLog(bus.bootstrap, bus.home / "audit" / "index.sqlite", bus.registry, bus.rings[AUDIT])
    await log.start()
    await log.checkpoint()
    await log.stop()
    env = {**os.environ, "JOINTBUS_HOME": str(bus.home), "JOINTBUS_BOOTSTRAP": bus.bootstrap}

    def jb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jointbus", *args], env=env, capture_output=True, text=True, timeout=120
        )

    proof = tmp_path / "event.tlog-proof"
    made = jb("audit", "prove", event_id, "--out", str(proof))
    assert made.returncode == 0, made.stderr
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    checked = jb("audit", "check-proof", str(proof))
    assert checked.returncode == 0, checked.stderr
    assert "proof OK" in checked.stdout
    lines = proof.read_text().split("\n")
    lines[2] = "index 0" if lines[2] != "index 0" else "index 1"
    proof.write_text("\n".join(lines))
    rejected = jb("audit", "check-proof", str(proof))
    assert rejected.returncode == 1
    assert "proof REJECTED" in rejected.stderr


@pytest.fixture(scope="module")
def rogue_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of its own: the rogue checkpoint and record must not reach other tests."""
    yield from _broker(tmp_path_factory, "rogue-kafka")


async def test_log_refuses_to_sign_after_a_conflicting_checkpoint(
    rogue_kafka: LocalBroker, tmp_path: Path
) -> None:
    """A published checkpoint that the log's history does not match (a fork, or rewritten
    history) stops the audit agent before it signs anything."""
    registry, rings = make_federation(tmp_path)
    bootstrap = rogue_kafka.bootstrap
    record = AuditRecord(
        position="rogue-test:0:0",
        received_at="2026-01-01T00:00:00.000Z",
        decision="rejected",
        reason="schema",
        wire_b64="AA==",
    )
    key = rings[AUDIT].signer(registry, registry.issued_at)[1]
    rogue = sign_checkpoint(Checkpoint(ORIGIN, 1, b"\x11" * 32), key)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait(AUDIT_TOPIC, record.to_bytes(), key=record.position.encode())
    await producer.send_and_wait(CHECKPOINT_TOPIC, rogue.encode(), key=b"1")
    await producer.stop()
    log = AuditLog(bootstrap, tmp_path / "b.sqlite", registry, rings[AUDIT])
    with pytest.raises(InconsistentLogError):
        await log.start()
    await log.stop()
