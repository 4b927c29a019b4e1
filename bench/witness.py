"""Witness figures: the cost of one checkpoint's check-and-cosign beside the bare Ed25519
verify + sign it contains (same run), and, live, the witness lag: the eight agencies'
witnesses (one process, as in the demo) following an audit agent that signs a checkpoint
every second while the e2e bench's rate of events is routed."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from bench.common import OPEN_PER_PAIR, bench_bus, compare
from bench.e2e import jointbus_run, pct
from jointbus.audit.agent import AuditLog
from jointbus.audit.merkle import consistency_proof, leaf_hash, list_subtree
from jointbus.audit.notes import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.audit.witness import Witness, WitnessState
from jointbus.audit.witnessing import cosignature_lines, witnessed
from jointbus.processes import WitnessProcess, WorkerProcess
from jointbus.schemas.checkpoints import open_checkpoint
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.registry import AUDIT
from jointbus.streams.topics import CHECKPOINT_TOPIC, cosignature_topic


class _Replay:
    """Feeds a witness the checkpoints in order, starting a fresh witness at the end."""

    def __init__(self, notes: list[tuple[str, int, list[bytes]]], fresh: Any) -> None:
        self.notes, self.fresh = notes, fresh
        self.i, self.witness = 0, fresh()

    def one(self) -> None:
        if self.i == len(self.notes):
            self.i, self.witness = 0, self.fresh()
        note, old, proof = self.notes[self.i]
        self.witness.observe(note, old, proof, now=1_800_000_000)
        self.i += 1


def observe_rate(checkpoints: int = 400) -> dict[str, float]:
    """Checkpoints checked and cosigned per second (signature, consistency proof over a
    growing tree, cosignature) beside bare Ed25519 verify + sign, interleaved."""
    registry, rings = new_federation(utcnow() - timedelta(days=1), open_per_pair=OPEN_PER_PAIR)
    audit = rings[AUDIT].signer(registry, registry.issued_at)[1]
    leaves = [leaf_hash(f"record {i}".encode()) for i in range(checkpoints * 50 + 1)]
    subtree = list_subtree(leaves)
    notes = []
    for k in range(1, checkpoints + 1):
        size = k * 50
        proof = consistency_proof(size - 50, size, subtree) if k > 1 else []
        notes.append((sign_checkpoint(Checkpoint(ORIGIN, size, subtree(0, size)), audit), size - 50, proof))
    replay = _Replay(notes, lambda: Witness.of(rings["sc-zigong"], registry, WitnessState()))

    message = notes[0][0].encode()
    signature = audit.sign(message)
    public = audit.public_key()
    rates = compare(
        {"observe": replay.one, "bare": lambda: (public.verify(signature, message), audit.sign(message))},
        checkpoints,
        rounds=3,
    )
    return {
        "witness_checkpoints_per_s": round(rates["observe"]),
        "bare_verify_and_sign_per_s": round(rates["bare"]),
        "witness_ratio": round(rates["observe"] / rates["bare"], 3),
    }


async def lags(bootstrap: str, registry: Any) -> list[float]:
    """Seconds from each checkpoint's append to each witness's cosignature of it."""
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    stamps = await _timestamps(bootstrap, CHECKPOINT_TOPIC)
    cosigned = [
        pair
        for agency in registry.agencies
        for pair in await _timestamps(bootstrap, cosignature_topic(agency))
    ]
    found: list[float] = []
    for note, made in stamps:
        cp = open_checkpoint(note, public)
        for cosigned_note, at in cosigned:
            agencies = witnessed(cp, cosignature_lines(cp, [cosigned_note]), registry).agencies
            if agencies:
                found.append((at - made) / 1000)
    return found


async def _timestamps(bootstrap: str, topic: str) -> list[tuple[str, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        rows: list[tuple[str, int]] = []
        while len(rows) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if not batch:
                break
            rows += [(r.value.decode(errors="replace"), r.timestamp) for r in batch.get(tp, []) if r.value]
        return rows
    finally:
        await consumer.stop()


async def audited_run(bus: Any, rate: float, seconds: float) -> None:
    """Route ``rate`` events/s for ``seconds`` while the audit agent signs every second."""
    log = AuditLog(
        bus.broker.bootstrap, bus.home / "audit" / "index.sqlite", bus.registry, bus.rings[AUDIT],
        every_records=10**9, every_seconds=1.0,
    )  # fmt: skip
    await log.start()
    stop = asyncio.Event()
    agent = asyncio.create_task(log.run(stop))
    try:
        await jointbus_run(bus.broker.bootstrap, bus.registry, bus.rings, int(rate * seconds), rate)
        await asyncio.sleep(2.5)  # the last checkpoints and their cosignatures
    finally:
        stop.set()
        await agent
        await log.stop()


def run(rate: float = 500.0, seconds: float = 15.0) -> dict[str, Any]:
    """The offline rate, then the live lag on a bus of its own."""
    figures: dict[str, Any] = observe_rate()
    with bench_bus("jointbus-bench-witness-") as bus:
        bus.worker = WorkerProcess(bus.home, bus.broker.bootstrap).start()
        witnesses = WitnessProcess(bus.home, bus.broker.bootstrap).start()
        began = time.monotonic()
        try:
            asyncio.run(audited_run(bus, rate, seconds))
            time.sleep(1.0)
        finally:
            witnesses.stop()
        found = asyncio.run(lags(bus.broker.bootstrap, bus.registry))
        checkpoints = len(asyncio.run(_timestamps(bus.broker.bootstrap, CHECKPOINT_TOPIC)))
    figures |= {
        "offered_events_per_s": rate,
        "seconds": round(time.monotonic() - began, 1),
        "checkpoints": checkpoints,
        "cosignatures": len(found),
        "every_checkpoint_cosigned_by_all_8": len(found) == 8 * checkpoints,
        "witness_lag_p50_ms": round(pct(found, 50) * 1000, 1) if found else None,
        "witness_lag_p99_ms": round(pct(found, 99) * 1000, 1) if found else None,
        "witness_lag_max_ms": round(max(found) * 1000, 1) if found else None,
    }
    return figures
