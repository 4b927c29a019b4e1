"""CPU amplification: whatever a member signs and sends, the router decides it at a bounded
cost — cheap byte bounds (docs/wire-format.md §2) before any parse or model, one parse, one
validation error however many unknown keys — and another agency's event still arrives
while one member floods the worst records it can build. Figures live in ``bench/hostile.py``;
these tests assert behaviour, not time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from bench.hostile import shapes
from jointbus.agents.routing import Router
from jointbus.schemas import envelope as envelope_module
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import MAX_DEPTH, MAX_STRUCTURE, check_bounds, nesting_depth, to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.jointcheck import JointCheckFindingsReported
from jointbus.schemas.ids import utcnow, uuid7
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import ROUTER
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import outbox
from tests.conftest import Bus
from tests.harness import collect
from tests.samples import SAMPLES
from tests.test_router import about, publish

NOW = utcnow()
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
STAMP = int(NOW.timestamp() * 1000)


def honest(ring: str = "sc-zigong") -> dict[str, Any]:
    return compose(
        keyring=RINGS[ring],
        registry=REGISTRY,
        event_type="rectification.issued",
        subject=f"rectification/{uuid.uuid4()}",
        recipients=["cq-yongchuan"],
        payload=SAMPLES["rectification.issued"],
        now=NOW,
    )


def resigned(env: dict[str, Any]) -> dict[str, Any]:
    """``env`` signed again by its sender's real key, with a fresh id: every check up to the
    one that refuses it runs, the signature included."""
    kid, key = RINGS["sc-zigong"].signer(REGISTRY, NOW)
    body = {k: v for k, v in env.items() if k not in ("signature", "id")}
    return sign_envelope(body | {"id": uuid7(STAMP)}, key, kid)


def reported_attack() -> bytes:
    """The issue's record: a signed envelope of ~140 KB carrying 5,000 arrays 15 deep."""
    return to_wire(resigned(shapes()["the reported attack (5,000 arrays 15 deep)"](honest())))  # type: ignore[arg-type]


def test_cpu_amplification_record_is_refused_before_any_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported record costs a byte count: the strict parser never sees it, and the
    audit record keeps its bytes."""

    class Untouchable:
        def decode(self, _: str) -> Any:
            raise AssertionError("the strict parser ran on a record the byte bounds refuse")

    monkeypatch.setattr(envelope_module, "_DECODER", Untouchable())
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    record = router.route(reported_attack(), outbox("sc-zigong"), 0, 0, STAMP).record
    assert record is not None
    assert (record.decision, record.reason) == ("rejected", Reason.TOO_LARGE)
    assert record.wire_b64 is not None
    assert record.event is None


def test_thousands_of_unknown_keys_cost_one_validation_error() -> None:
    """A payload whose nested model holds 2,000 unknown keys raises one error, not 2,000 (the
    validator would build, and the router convert, one per key)."""
    data = {"findings": [{f"k{i}": i for i in range(2000)}]}
    with pytest.raises(ValidationError) as caught:
        JointCheckFindingsReported.from_json(data)
    assert caught.value.error_count() == 1
    assert caught.value.errors()[0]["loc"] == ("findings", 0, "k0")


@pytest.mark.parametrize("name", sorted(shapes()))
def test_every_worst_shape_is_decided_with_its_reason(name: str) -> None:
    """The bench's worst records: each refused with a reason code of the wire contract,
    never an internal error."""
    built = shapes()[name](honest())
    wire = built if isinstance(built, bytes) else to_wire(resigned(built))
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    record = router.route(wire, outbox("sc-zigong"), 0, 0, STAMP).record
    assert record is not None
    assert record.decision == "rejected"
    assert record.reason in {Reason.TOO_LARGE, Reason.TOO_DEEP, Reason.SCHEMA}, record.detail


def test_structure_counts_brackets_and_commas_wherever_they_stand() -> None:
    at_limit = b'{"a":"' + b"," * (MAX_STRUCTURE - 2) + b'"}'
    check_bounds(at_limit)
    with pytest.raises(ContractError) as caught:
        check_bounds(b'{"a":"' + b"," * (MAX_STRUCTURE - 1) + b'"}')
    assert caught.value.reason == Reason.TOO_LARGE


def test_closing_brackets_in_a_string_do_not_hide_nesting() -> None:
    """``"]]]"`` before deep nesting: the depth is JSON's, strings excluded."""
    deep = b'{"a":"' + b"]" * 40 + b'","b":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}"
    assert nesting_depth(deep, MAX_DEPTH) == MAX_DEPTH + 1
    with pytest.raises(ContractError) as caught:
        check_bounds(deep)
    assert caught.value.reason == Reason.TOO_DEEP


def test_a_text_deep_before_its_syntax_breaks_is_too_deep_and_one_broken_first_is_not() -> None:
    assert nesting_depth(b'{"a":' + b"[" * MAX_DEPTH + b"x", MAX_DEPTH) > MAX_DEPTH
    assert nesting_depth(b'{"a":x' + b"[" * MAX_DEPTH, MAX_DEPTH) <= MAX_DEPTH
    assert nesting_depth(b"[" * 1500, MAX_DEPTH) > MAX_DEPTH  # deeper than the parser's stack


FLOOD = 200


@pytest.mark.broker
async def test_cpu_amplification_flood_does_not_stall_another_agencys_events(bus: Bus) -> None:
    """sc-zigong sends 200 of the reported records (28 MB); sc-yibin's event to sc-luzhou,
    sent after them, is still delivered, and within the bound every delivery test allows."""
    wire = reported_attack()
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        sent = [await pub.send_wire(wire, f"rectification/{i}") for i in range(FLOOD)]
        await asyncio.gather(*sent)
    subject = f"rectification/{uuid.uuid4()}"
    event_id = await publish(bus, "sc-yibin", "rectification.issued", subject, ["sc-luzhou"])
    got = await collect("sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap, about(subject), 1)
    assert [d.id for d in got] == [event_id]
