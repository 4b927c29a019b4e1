"""Audit log figures: index append rate, proof time, bytes per event, full-verify rate beside
bare Ed25519 verify (same run), and verify's memory at two log lengths (flat = streaming)."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import tracemalloc
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import OPEN_PER_PAIR, compare
from jointbus.agents.routing import Router
from jointbus.audit.index import TreeIndex
from jointbus.audit.merkle import Frontier, leaf_hash, verify_inclusion
from jointbus.audit.notes import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.audit.parallel import feed_parallel
from jointbus.audit.verifier import Verifier
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import AUDIT, ROUTER
from jointbus.streams.topics import AUDIT_TOPIC, outbox

PAYLOAD = {"percent_complete": 40, "note": "向家坝灌区北总干渠 渠道衬砌已完成40%，剩余段落计划月底前完工"}


def synthetic_log(n: int) -> tuple[Any, list[tuple[int, bytes, bytes]], list[str]]:
    """A log of ``n`` router decisions (issue + progress pairs) with checkpoints every 1000."""
    now = utcnow() - timedelta(hours=2)
    registry, rings = new_federation(now - timedelta(days=1), open_per_pair=OPEN_PER_PAIR)
    router = Router(registry, rings[ROUTER], Rules())
    rows: list[tuple[int, bytes, bytes]] = []
    offset = 0
    while len(rows) < n:
        subject = f"rectification/{uuid.uuid4()}"
        for family, payload, sender, to in (
            (
                "rectification.issued",
                {"responsible_unit": "某单位", "problem": "问题", "deadline": "2099-01-01"},
                "sc-yibin",
                ["sc-zigong"],
            ),
            ("rectification.progress_reported", PAYLOAD, "sc-zigong", ["sc-yibin"]),
        ):
            env = compose(
                keyring=rings[sender],
                registry=registry,
                event_type=family,
                subject=subject,
                recipients=to,
                payload=payload,
                now=now,
            )
            routed = router.route(to_wire(env), outbox(sender), 0, offset, int(now.timestamp() * 1000))
            offset += 1
            for out in routed.outputs:
                if out.topic == AUDIT_TOPIC:
                    rows.append((len(rows), out.key, out.value))
    rows = rows[:n]
    key = rings[AUDIT].signer(registry, now)[1]
    frontier, rule, notes = Frontier(), LeafRule(), []
    for _, k, v in rows:
        if rule.admit(k):
            frontier.append(leaf_hash(v))
            if frontier.size % 1000 == 0 or frontier.size == len(rows):
                notes.append(sign_checkpoint(Checkpoint(ORIGIN, frontier.size, frontier.root()), key))
    return registry, rows, notes


def verify_all(registry: Any, rows: list[tuple[int, bytes, bytes]], notes: list[str]) -> None:
    verifier = Verifier(registry, notes)
    for offset, key, value in rows:
        verifier.feed(offset, key, value)
    verifier.finish()


def run(leaves: int = 100_000, verify_events: int = 4000) -> dict[str, Any]:
    """Measure and return the audit figures."""
    rng = random.Random(1)
    values = [rng.randbytes(700) for _ in range(leaves)]
    with tempfile.TemporaryDirectory() as tmp:
        index = TreeIndex(Path(tmp) / "index.sqlite")
        start = time.perf_counter()
        for b in range(0, leaves, 5000):
            index.append(
                (i, f"jointbus.outbox.x:0:{i}".encode(), values[i], str(uuid.UUID(int=i)))
                for i in range(b, min(b + 5000, leaves))
            )
        append_rate = leaves / (time.perf_counter() - start)
        picks = [rng.randrange(leaves) for _ in range(200)]
        start = time.perf_counter()
        proofs = [index.inclusion(i, leaves) for i in picks]
        proof_ms = (time.perf_counter() - start) / len(picks) * 1000
        root = index.root()
        pairs = zip(picks, proofs, strict=True)
        assert all(verify_inclusion(i, leaves, leaf_hash(values[i]), p, root) for i, p in pairs)
        index.close()
        bytes_per_event = sum(f.stat().st_size for f in Path(tmp).iterdir()) / leaves

    registry, rows, notes = synthetic_log(verify_events)
    key = Ed25519PrivateKey.generate()
    message = rows[0][2][:600]
    signature = key.sign(message)
    public = key.public_key()
    n = len(rows)
    rates = compare({"bare": lambda: public.verify(signature, message)}, n, rounds=3)
    start = time.perf_counter()
    verify_all(registry, rows, notes)
    verify_rate = n / (time.perf_counter() - start)
    start = time.perf_counter()
    parallel = Verifier(registry, notes)
    asyncio.run(feed_parallel(parallel, rows, 2, lambda _: None))
    parallel.finish()
    jobs2_rate = n / (time.perf_counter() - start)

    def peak(k: int) -> float:
        reg, r, cps = synthetic_log(k)
        tracemalloc.start()
        verify_all(reg, r, cps)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top / 1e6

    small, large = peak(8000), peak(16000)
    return {
        "append_leaves_per_s": round(append_rate),
        "inclusion_proof_ms": round(proof_ms, 3),
        "index_bytes_per_event": round(bytes_per_event),
        "verify_records_per_s": round(verify_rate),
        "bare_ed25519_verify_per_s": round(rates["bare"]),
        "verify_ratio": round(verify_rate / rates["bare"], 3),
        "verify_jobs2_records_per_s": round(jobs2_rate),
        "verify_jobs2_ratio": round(jobs2_rate / rates["bare"], 3),
        "verify_peak_mb_8k_records": round(small, 1),
        "verify_peak_mb_16k_records": round(large, 1),
    }
