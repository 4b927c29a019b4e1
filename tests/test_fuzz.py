"""Hostile input: at least 10,000 malformed or malicious envelopes through the router's
decision code. It never raises or stalls; every input is rejected with a reason code, gets
an audit record, and its sender (when a known agency) a signed notice."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointbus.agents.routing import Router
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import Reason
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.conftest import Bus
from tests.fuzzing import fuzz_target
from tests.harness import collect, eventually
from tests.samples import SAMPLES
from tests.stats import STATS

NOW = utcnow()
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
ROUTER_ = Router(REGISTRY, RINGS[ROUTER], Rules())
OFFSETS = itertools.count()
REASONS = {r.value for r in Reason}
VALID = [
    compose(
        keyring=RINGS["sc-zigong"],
        registry=REGISTRY,
        event_type=f,
        subject=f"{f.split('.')[0]}/{uuid.uuid4()}",
        recipients=["cq-yongchuan"],
        payload=SAMPLES[f],
        now=NOW,
    )
    for f in ("clue.transferred", "rectification.issued", "jointcheck.invited", "receipt")
]
TRICKS = [
    "sc-zіgong",
    "sc-zigong\u202e",
    "\u0000",
    "\ufeffsc-zigong",
    "ＳＣ-zigong",
    "sc-zigong ",
    "\ud800",
    "../../etc/passwd",
    "A" * 5000,
    "𝕤𝕔-zigong",
    "\u200bsc-zigong",
]


def mutate(base: dict[str, Any], choice: int, rnd: random.Random, text: str) -> bytes:
    env = json.loads(json.dumps(base))
    key = rnd.choice(sorted(env))
    if choice == 0:  # truncated JSON
        wire = to_wire(env)
        return wire[: rnd.randrange(len(wire))]
    if choice == 1:  # wrong types
        env[key] = rnd.choice([None, 0, -1, True, [], {}, [1, 2], {"a": 1}, 2**60, text])
    elif choice == 2:  # huge field
        env[key] = text * rnd.randint(1, 8) + "x" * rnd.choice([10, 10_000, 300_000])
    elif choice == 3:  # bad base64 where base64 belongs
        bad = rnd.choice(["!!!!", "====", "AAAA=", text, "+/+/" * 22, "A" * 85, "A" * 87])
        if env.get("datacontenttype", "").endswith("sealed+json") and rnd.random() < 0.5:
            env["data"]["ciphertext"] = bad
        else:
            env["signature"] = bad
    elif choice == 4:  # unknown extension
        env[text or "x-ext"] = text
    elif choice == 5:  # unicode tricks in identity fields
        trick = rnd.choice(TRICKS)
        field = rnd.choice(["source", "recipients", "sigkeyid", "type", "subject"])
        env[field] = (
            [trick] if field == "recipients" else (f"urn:jointbus:{trick}" if field == "source" else trick)
        )
    elif choice == 6:  # signature of another event
        other = rnd.choice([v for v in VALID if v["id"] != env["id"]])
        env["signature"] = other["signature"]
    elif choice == 7:  # random bytes
        return rnd.randbytes(rnd.randint(0, 400))
    elif choice == 8:  # nested depth bomb
        depth = rnd.choice([50, 2000, 100_000])
        wire = to_wire(env).decode()
        return wire.replace('"data":', '"data":' + "[" * depth + '"x"' + "]" * depth + ',"d":', 1).encode()
    elif choice == 9:  # duplicate keys and NaN
        wire = to_wire(env).decode()
        return rnd.choice(
            [
                wire.replace('"id":', '"id":"x","id":', 1),
                wire.replace("{", '{"n":NaN,', 1),
                wire.replace('"specversion":"1.0"', '"specversion":1.0', 1),
            ]
        ).encode()
    return json.dumps(env, ensure_ascii=rnd.random() < 0.5).encode("utf-8", errors="surrogatepass")


@settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.integers(0, 9), st.integers(0, 2**32), st.text(max_size=30), st.sampled_from(VALID))
def test_router_rejects_every_hostile_input_with_a_reason_and_an_audit_record(
    choice: int, seed: int, text: str, base: dict[str, Any]
) -> None:
    """10,000 hostile inputs: rejected (never accepted, never an exception), audited."""
    wire = mutate(base, choice, random.Random(seed), text)
    STATS["fuzz inputs tried"] = int(STATS.get("fuzz inputs tried", 0)) + 1
    routed = ROUTER_.route(wire, outbox("sc-zigong"), 0, next(OFFSETS), int(NOW.timestamp() * 1000))
    record = routed.record
    assert record is not None
    if record.decision == "accepted":  # a mutation that changed nothing signed is still valid
        assert record.event_id == base["id"]
        return
    assert record.decision == "rejected"
    assert record.reason in REASONS
    audits = [o for o in routed.outputs if o.topic == AUDIT_TOPIC]
    assert len(audits) == 1
    assert AuditRecord.model_validate_json(audits[0].value) == record
    assert record.sender == "sc-zigong"  # the outbox's owner, whatever the bytes claim
    if record.reason != Reason.INTERNAL:
        assert any(o.topic == "jointbus.inbox.sc-zigong" for o in routed.outputs)
    STATS["fuzz inputs rejected with a reason"] = int(STATS.get("fuzz inputs rejected with a reason", 0)) + 1


@fuzz_target("router", seeds=lambda: [to_wire(v) for v in VALID])
def route_any_bytes(wire: bytes) -> None:
    """The router decides any bytes: one audited decision, never an exception, never an
    internal error from input."""
    routed = ROUTER_.route(wire, outbox("sc-zigong"), 0, next(OFFSETS), int(NOW.timestamp() * 1000))
    record = routed.record
    assert record is not None
    assert record.decision in ("accepted", "rejected")
    assert record.reason != Reason.INTERNAL, record.detail
    assert sum(o.topic == AUDIT_TOPIC for o in routed.outputs) == 1


LIVE_INPUTS = 300


@pytest.mark.broker
async def test_live_worker_audits_every_hostile_record_and_keeps_routing(bus: Bus) -> None:
    """300 hostile records through the real worker: each gets an audit record with a reason,
    and a valid event sent after them is still delivered (no crash, no stall)."""
    rnd = random.Random(99)
    positions: set[str] = set()
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        futures = []
        for i in range(LIVE_INPUTS):
            wire = mutate(rnd.choice(VALID), i % 10, rnd, "ﬀ\u202e")
            if len(wire) > 900_000:
                wire = wire[:900_000]
            futures.append(await pub.send_wire(wire, f"fuzz/{i}"))
        for meta in await asyncio.gather(*futures):
            positions.add(f"{outbox('sc-zigong')}:{meta.partition}:{meta.offset}")
        valid = await pub.publish(
            "rectification.issued",
            f"rectification/{uuid.uuid4()}",
            ["cq-dazu"],
            SAMPLES["rectification.issued"],
        )
    delivered = await collect(
        "cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, lambda d: d.id == valid, 1, within=120
    )
    assert [d.id for d in delivered] == [valid]

    async def all_audited() -> dict[str, AuditRecord] | None:  # partitions interleave
        audited: dict[str, AuditRecord] = {}
        async for _, key, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
            if key is not None and key.decode() in positions:
                audited.setdefault(key.decode(), AuditRecord.model_validate_json(value))
        return audited if set(audited) == positions else None

    audited = await eventually(
        all_audited, within=60, what=f"decisions for all {len(positions)} fuzz records"
    )
    assert all(r.decision == "rejected" and r.reason in REASONS for r in audited.values())
    STATS["live fuzz records audited by the running worker"] = len(audited)
