"""The eight agencies' witnesses on the real broker: they cosign the audit log's
checkpoints, a proof needs the policy's five cosignatures, a witness restarted from its own
state carries on, and a truncated log or a forked checkpoint (validly signed by the audit
key) is refused by every witness and told to every agency.

The module owns its broker; its last test appends rogue checkpoints to it."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from jointbus.audit.agent import AuditLog
from jointbus.audit.cosign import WITNESS_PREFIX
from jointbus.audit.cosigned import read_cosigned
from jointbus.audit.notes import ORIGIN, Checkpoint, open_checkpoint, sign_checkpoint
from jointbus.audit.witness import WitnessState
from jointbus.audit.witnessing import cosignature_lines, witnessed
from jointbus.processes import WorkerProcess
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.registry import AUDIT, Registry
from jointbus.streams import keystore
from jointbus.streams.broker import LocalBroker
from jointbus.streams.sdk import Delivery, Publisher
from jointbus.streams.settings import Settings
from jointbus.streams.topics import CHECKPOINT_TOPIC, CONSISTENCY_FROM_HEADER, cosignature_topic
from jointbus.witnesscli import state_path, witness_agency
from tests.conftest import _broker
from tests.harness import collect, eventually, jointbus_cli
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker


@dataclass
class WitnessedBus:
    bootstrap: str
    home: Path
    registry: Registry
    rings: dict[str, Keyring]
    tasks: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(bootstrap=self.bootstrap, home=self.home, keystore=self.home / "keys")

    def start_witness(self, agency: str, directory: Path) -> None:
        """``agency``'s witness, in-process through the library entry point the CLI uses."""
        stop = asyncio.Event()
        run = witness_agency(self.settings, self.rings[agency], self.registry, directory, stop, self.registry)
        self.tasks[agency] = (stop, asyncio.create_task(run))

    async def stop_witness(self, agency: str) -> None:
        stop, task = self.tasks.pop(agency)
        stop.set()
        await asyncio.wait_for(task, 30)

    async def stop_all(self) -> None:
        for agency in list(self.tasks):
            await self.stop_witness(agency)


@pytest.fixture(scope="module")
def wbus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessedBus]:
    """A broker of its own, a federation whose policy trusts a checkpoint once 5 of its 8
    agencies' witnesses cosigned it, and a worker routing."""
    home = tmp_path_factory.mktemp("witnessed")
    registry, rings = new_federation(utcnow() - timedelta(days=1), witness_quorum=5)
    for ring in rings.values():
        keystore.save_keyring(home / "keys", ring)
    keystore.save_registry(home / "keys", registry)
    broker_iter = _broker(tmp_path_factory, "witness-kafka", registry)
    broker: LocalBroker = next(broker_iter)
    worker = WorkerProcess(home, broker.bootstrap).start()
    yield WitnessedBus(broker.bootstrap, home, registry, rings)
    worker.stop()
    next(broker_iter, None)


async def traffic_and_checkpoint(bus: WitnessedBus) -> tuple[str, Checkpoint]:
    """One event routed and audited, then a checkpoint signed over the log."""
    subject = f"rectification/{uuid.uuid4()}"
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        routed = await pub.publish_routed(
            "rectification.issued", subject, ["cq-yongchuan"], SAMPLES["rectification.issued"]
        )
    assert routed.accepted, routed
    event_id = routed.event_id
    log = AuditLog(bus.bootstrap, bus.home / "audit" / "index.sqlite", bus.registry, bus.rings[AUDIT])

    async def audited() -> Checkpoint | None:
        await log.catch_up()
        if not log.index.leaves_of(event_id):
            return None
        note = await log.checkpoint()
        public = bus.registry.verifier(bus.registry.current_key(AUDIT, "sign", bus.registry.issued_at).kid)
        return open_checkpoint(note, public)

    await log.start()
    try:
        checkpoint = await eventually(audited, within=30, what=f"the audit record of {event_id}")
    finally:
        await log.stop()
    return event_id, checkpoint


async def cosigners(bus: WitnessedBus, checkpoint: Checkpoint) -> tuple[str, ...]:
    notes = (await read_cosigned(bus.bootstrap, bus.registry.agencies)).texts
    return witnessed(checkpoint, cosignature_lines(checkpoint, notes), bus.registry).agencies


async def cosigned_by(bus: WitnessedBus, checkpoint: Checkpoint, agencies: set[str]) -> None:
    async def done() -> bool | None:
        return True if agencies <= set(await cosigners(bus, checkpoint)) else None

    await eventually(
        done, within=60, what=f"cosignatures of checkpoint {checkpoint.size} by {sorted(agencies)}"
    )


async def hostile_cosignatures(bus: WitnessedBus, checkpoint: Checkpoint) -> None:
    """What a malicious agency can write to its own witness's topic (the only one it may):
    no value, bytes that are not UTF-8, the real checkpoint with a forged audit line and a
    forged witness line, and a note padded to 100 KB."""
    body = checkpoint.text().rstrip("\n")
    forged = (
        f"{body}\n\n— {ORIGIN} {base64.b64encode(bytes(68)).decode()}\n"
        f"— {WITNESS_PREFIX}sc-luzhou {base64.b64encode(bytes(76)).decode()}\n"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bus.bootstrap, acks="all")
    await producer.start()
    for value in (None, b"\xff\xfe\x00", forged.encode(), (forged + "— x " + "A" * 100_000).encode()):
        await producer.send_and_wait(cosignature_topic("sc-luzhou"), value, key=b"sc-luzhou")
    await producer.stop()


def keep_witness_lines(proof: str, count: int) -> str:
    """``proof`` with only its first ``count`` witness cosignature lines."""
    kept, out = 0, []
    for line in proof.split("\n"):
        if line.startswith(f"— {WITNESS_PREFIX}"):
            kept += 1
            if kept > count:
                continue
        out.append(line)
    return "\n".join(out)


async def test_eight_witnesses_cosign_and_a_proof_needs_five_of_them(
    wbus: WitnessedBus, tmp_path: Path
) -> None:
    """Every agency's witness cosigns the checkpoint; `audit verify` reports 8 of 8; the proof
    `audit prove` writes carries the cosignatures, and `check-proof` passes it with five of
    them under the 5-of-8 policy and refuses it with four (not_witnessed)."""
    event_id, checkpoint = await traffic_and_checkpoint(wbus)
    for agency in wbus.registry.voters:
        wbus.start_witness(agency, tmp_path / "witness")
    try:
        await cosigned_by(wbus, checkpoint, set(wbus.registry.voters))
    finally:
        await wbus.stop_all()
    await hostile_cosignatures(wbus, checkpoint)  # any agency may write there: none of it counts
    verified = await jointbus_cli(wbus.home, wbus.bootstrap, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (
        f"checkpoint {checkpoint.size} cosigned by 8 of 8 agencies' witnesses (policy: 5 required)"
        in verified.stdout
    )
    proof = tmp_path / "event.tlog-proof"
    made = await jointbus_cli(wbus.home, wbus.bootstrap, "audit", "prove", event_id, "--out", str(proof))
    assert made.returncode == 0, made.stderr
    text = proof.read_text(encoding="utf-8")
    assert text.count(f"— {WITNESS_PREFIX}") == 8
    for count, status in ((5, 0), (4, 1)):
        variant = tmp_path / f"with-{count}.tlog-proof"
        variant.write_text(keep_witness_lines(text, count), encoding="utf-8")
        checked = await jointbus_cli(wbus.home, wbus.bootstrap, "audit", "check-proof", str(variant))
        assert checked.returncode == status, checked.stdout + checked.stderr
        assert f"cosigned by {count} of 8" in checked.stdout + checked.stderr
    assert "[not_witnessed]" in checked.stderr
    assert "Traceback" not in checked.stderr


async def test_restarted_witness_carries_on_then_every_witness_refuses_a_truncated_log_and_a_fork(
    wbus: WitnessedBus, tmp_path: Path
) -> None:
    """A witness stopped and restarted from its own state cosigns the next checkpoint. Then
    the operator publishes a checkpoint of a truncated log and one of the same size with
    another root, both validly signed by the audit key: every witness refuses both, keeps
    what it held, and every agency is told (log.witness_refused; log.equivocation with both
    signed notes, which the router checked). Auditors see the fork too."""
    directory = tmp_path / "witness"
    _, first = await traffic_and_checkpoint(wbus)
    for agency in wbus.registry.voters:
        wbus.start_witness(agency, directory)
    try:
        await cosigned_by(wbus, first, set(wbus.registry.voters))
        await wbus.stop_witness("cq-dazu")
        _, second = await traffic_and_checkpoint(wbus)
        await cosigned_by(wbus, second, set(wbus.registry.voters) - {"cq-dazu"})
        assert WitnessState.load(state_path(directory, "cq-dazu")).size == first.size
        wbus.start_witness("cq-dazu", directory)  # from its saved state; its alerts below count too
        await cosigned_by(wbus, second, {"cq-dazu"})

        await hostile_cosignatures(wbus, second)  # the witnesses read past it and carry on
        key = wbus.rings[AUDIT].signer(wbus.registry, wbus.registry.issued_at)[1]
        log = AuditLog(wbus.bootstrap, wbus.home / "audit" / "index.sqlite", wbus.registry, None)
        await log.start()
        truncated = Checkpoint(ORIGIN, first.size - 1, log.index.root(first.size - 1))
        await log.stop()
        forked = Checkpoint(ORIGIN, second.size, b"\x22" * 32)
        producer = AIOKafkaProducer(bootstrap_servers=wbus.bootstrap, acks="all")
        await producer.start()
        for rogue in (truncated, forked):
            await producer.send_and_wait(
                CHECKPOINT_TOPIC,
                sign_checkpoint(rogue, key).encode(),
                key=str(rogue.size).encode(),
                headers=[(CONSISTENCY_FROM_HEADER, b"0")],
            )
        await producer.stop()

        def alert(delivery: Delivery) -> bool:
            return delivery.envelope.type.startswith("org.jointbus.log.")

        told = await collect(
            "sc-zigong", wbus.rings["sc-zigong"], wbus.registry, wbus.bootstrap, alert, 14, 90
        )
        kinds = sorted((d.envelope.type, d.envelope.sender) for d in told)
        others = sorted(set(wbus.registry.voters) - {"sc-zigong"})
        assert kinds == sorted(
            [("org.jointbus.log.equivocation.v1", a) for a in others]
            + [("org.jointbus.log.witness_refused.v1", a) for a in others]
        )
        evidence = next(d for d in told if d.envelope.type == "org.jointbus.log.equivocation.v1")
        assert evidence.payload.model_dump()["size"] == second.size
    finally:
        await wbus.stop_all()
    for agency in wbus.registry.voters:
        held = WitnessState.load(state_path(directory, agency))
        assert held.size == second.size, agency
    verified = await jointbus_cli(wbus.home, wbus.bootstrap, "audit", "verify")
    assert verified.returncode == 1
    assert "[fork]" in verified.stderr
