"""The worst records a member can send, beside an honest event, through the router's
decision code in the same run: what each costs the router, as a multiple of an honest
event's cost (the goal: at most 10× for any record up to the size limit).

Each hostile record is signed with the sender's real key (so every check up to the one
that refuses it runs, signature included) and is as large as the bounds of
docs/wire-format.md §2 let it be. Honest events are fresh each time (a repeat would be a
cheaper duplicate); a hostile record may repeat, since a refused check takes no id.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog

from bench.common import OPEN_PER_PAIR, compare
from bench.e2e import PAYLOAD
from jointbus.agents.routing import Router
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import MAX_ENVELOPE_BYTES, MAX_STRUCTURE, to_wire
from jointbus.schemas.ids import utcnow, uuid7
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import ROUTER
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.topics import outbox

#: room left for the envelope's own attributes when filling it to the size limit
HEADROOM = 1_500


def shapes() -> dict[str, Callable[[dict[str, Any]], dict[str, Any] | bytes]]:
    """Each worst shape, built from an honest envelope (signed again after the change)."""
    room = MAX_ENVELOPE_BYTES - HEADROOM
    width = MAX_STRUCTURE - 40  # what the envelope's own attributes leave

    def extra(value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda env: env | {"data": env["data"] | {"x": value}}

    def nested(levels: int, count: int) -> Any:
        one: Any = 0
        for _ in range(levels):
            one = [one]
        return [one] * count

    return {
        "long ASCII string": extra("a" * room),
        "long string of escapes": extra("\u0001" * (room // 6)),
        "long string of astral characters": extra("\U0001f600" * (room // 4)),
        "long Chinese string": extra("渠" * (room // 3)),
        "widest array of integers": extra(list(range(width))),
        "widest array of long strings": extra(["渠" * (room // width // 3 - 2)] * width),
        "most keys in one object": lambda env: (
            env | {"data": env["data"] | {f"k{i}": i for i in range(width)}}
        ),
        "most unknown keys one level down": lambda env: (
            env
            | {
                "type": "org.jointbus.jointcheck.findings_reported.v1",
                "data": {"findings": [{f"k{i}": i for i in range(width)}]},
            }
        ),
        "deepest nesting, widest": extra(nested(13, width // 30)),
        "the reported attack (5,000 arrays 15 deep)": extra(nested(13, 5000)),
        "nesting 17 deep": extra(nested(15, 1)),
        "not JSON": lambda _: os.urandom(MAX_ENVELOPE_BYTES),
        "quotes only": lambda _: b'"' * MAX_ENVELOPE_BYTES,
        "commas in one string": extra("," * room),
    }


def run(n: int = 30, rounds: int = 5) -> dict[str, Any]:
    """Measure and return the figures (decisions/s; each shape's cost as a multiple of an
    honest event's)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    now = utcnow()
    registry, rings = new_federation(now - timedelta(days=1), open_per_pair=OPEN_PER_PAIR)
    router = Router(registry, rings[ROUTER], Rules())
    ring = rings["sc-zigong"]
    kid, key = ring.signer(registry, now)
    offsets = itertools.count()
    stamp = int(now.timestamp() * 1000)

    def honest() -> dict[str, Any]:
        return compose(
            keyring=ring,
            registry=registry,
            event_type="rectification.issued",
            subject=f"rectification/{uuid.uuid4()}",
            recipients=["cq-yongchuan"],
            payload=PAYLOAD,
            now=now,
        )

    def route(wire: bytes) -> None:
        router.route(wire, outbox("sc-zigong"), 0, next(offsets), stamp)

    fresh = iter([to_wire(honest()) for _ in range(n * rounds * 2)])
    wires: dict[str, bytes] = {}
    for name, change in shapes().items():
        built = change(honest())
        if isinstance(built, bytes):
            wires[name] = built
            continue
        body = {k: v for k, v in built.items() if k not in ("signature", "id")}
        body["id"] = uuid7(stamp)
        wires[name] = to_wire(sign_envelope(body, key, kid))
    calls: dict[str, Callable[[], object]] = {"honest event": lambda: route(next(fresh))}
    for name, wire in wires.items():
        calls[name] = lambda wire=wire: route(wire)  # type: ignore[misc]
    rates = compare(calls, n, rounds)
    honest_rate = rates["honest event"]
    reasons = {}
    for name, wire in wires.items():
        record = router.route(wire, outbox("sc-zigong"), 0, next(offsets), stamp).record
        reasons[name] = (record.decision, record.reason) if record else None
    costs = {
        name: {
            "bytes": len(wire),
            "decided_as": reasons[name],
            "per_second": round(rates[name]),
            "cost_vs_honest": round(honest_rate / rates[name], 2),
        }
        for name, wire in wires.items()
    }
    return {
        "honest_per_second": round(honest_rate),
        "worst_cost_vs_honest": max(c["cost_vs_honest"] for c in costs.values()),
        "shapes": costs,
    }
