"""Sign and verify-and-parse rates of envelopes beside bare Ed25519 in the same run."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import OPEN_PER_PAIR, compare
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.verify import verify_event


def run(n: int = 3000) -> dict[str, Any]:
    """Measure and return the figures (rates in events/s, ratios to bare Ed25519)."""
    now = utcnow()
    registry, rings = new_federation(now, open_per_pair=OPEN_PER_PAIR)
    payload = {
        "percent_complete": 40,
        "note": "向家坝灌区北总干渠 渠道衬砌已完成40%，剩余段落计划月底前完工",
    }

    def make() -> dict[str, Any]:
        return compose(
            keyring=rings["sc-zigong"],
            registry=registry,
            event_type="rectification.progress_reported",
            subject="rectification/0195a1b2-demo",
            recipients=["cq-yongchuan", "sc-luzhou"],
            payload=payload,
            now=now,
        )

    wire = to_wire(make())
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    signature = key.sign(wire)
    rates = compare(
        {
            "bare_sign": lambda: key.sign(wire),
            "envelope_sign": make,
            "bare_verify": lambda: public.verify(signature, wire),
            "envelope_verify_and_parse": lambda: verify_event(wire, registry, received_at=now),
        },
        n,
    )
    return {
        "envelope_bytes": len(wire),
        **{k: round(v) for k, v in rates.items()},
        "verify_ratio": round(rates["envelope_verify_and_parse"] / rates["bare_verify"], 3),
        "sign_ratio": round(rates["envelope_sign"] / rates["bare_sign"], 3),
    }
