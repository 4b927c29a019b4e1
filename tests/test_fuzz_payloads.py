"""``internal_error`` from input, which docs/router.md says no input can cause: every field
of every event family's payload, set to the extremes of its JSON type (the calendar's first
and last day, ±(2^53 − 1), empty and 4,000-character strings, control characters, empty and
long lists, a value of another type), signed by a member and routed. Each is decided with a
reason code of the contract or accepted; never an internal error."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jointbus.agents.routing import Router
from jointbus.schemas.catalog import CURRENT
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import Reason
from jointbus.schemas.ids import format_time, utcnow, uuid7
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import ROUTER
from jointbus.schemas.sealing import seal
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.topics import outbox
from tests.fuzzing import examples, fuzz_target
from tests.samples import SAMPLES

NOW = utcnow()
STAMP = int(NOW.timestamp() * 1000)
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
ROUTER_ = Router(REGISTRY, RINGS[ROUTER], Rules())
OFFSETS = itertools.count()
SENDER = "sc-zigong"
TO = ["cq-yongchuan"]
FAMILIES = sorted(f for f, spec in CURRENT.items() if "agency" in spec.publishers)

EXTREMES: list[Any] = [
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    0,
    -1,
    2**53 - 1,
    -(2**53 - 1),
    "",
    "x" * 4000,
    "渠" * 4001,
    "\u0000\u202e\ufeff",
    [],
    ["sc-zigong"] * 64,
    {},
    True,
    "cq-yongchuan",
    "sc-zigong",
]


def signed(family: str, payload: dict[str, Any]) -> bytes:
    """``payload`` as a member would send it: plain, or sealed to the recipient when the
    family is sealed (the router then judges only the envelope)."""
    spec = CURRENT[family]
    kid, key = RINGS[SENDER].signer(REGISTRY, NOW)
    event_id = uuid7(STAMP)
    data: dict[str, Any] = payload
    content = "application/json"
    if spec.sensitive:  # the router judges only the envelope; the recipient reads the rest
        keys = [(r, *REGISTRY.sealing_key(r, NOW)) for r in TO]
        data = seal(json.dumps(payload, ensure_ascii=False).encode(), event_id, keys)
        content = "application/jointbus-sealed+json"
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"urn:jointbus:{SENDER}",
        "type": spec.type,
        "subject": f"{family.split('.')[0]}/{uuid.uuid4()}",
        "time": format_time(NOW),
        "datacontenttype": content,
        "recipients": TO,
        "correlationid": str(uuid.uuid4()),
        "data": data,
    }
    return to_wire(sign_envelope(body, key, kid))


def route(wire: bytes) -> None:
    """Decide ``wire``; the decision is the contract's, never an internal error."""
    record = ROUTER_.route(wire, outbox(SENDER), 0, next(OFFSETS), STAMP).record
    assert record is not None
    assert record.decision in ("accepted", "rejected")
    assert record.reason != Reason.INTERNAL, record.detail


@fuzz_target("payload", seeds=lambda: [signed(f, SAMPLES[f]) for f in FAMILIES])
def route_payload_bytes(wire: bytes) -> None:
    route(wire)


@examples(600)
@given(st.sampled_from(FAMILIES), st.data())
def test_no_payload_field_at_its_extremes_gives_an_internal_error(family: str, data: st.DataObject) -> None:
    payload = dict(SAMPLES[family])
    field = data.draw(st.sampled_from(sorted(payload) or ["x"]))
    payload[field] = data.draw(st.sampled_from(EXTREMES))
    route(signed(family, payload))


def test_every_family_signed_here_with_its_example_is_accepted() -> None:
    """The fuzzer's envelopes are honest but for the field it changes (else it would only
    ever test the envelope schema): each passes every check up to the lifecycle, and the
    families that open an aggregate are accepted."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    reasons = {}
    for family in FAMILIES:
        record = router.route(signed(family, SAMPLES[family]), outbox(SENDER), 0, next(OFFSETS), STAMP).record
        assert record is not None
        reasons[family] = record.reason
    assert reasons["rectification.issued"] is None
    assert reasons["clue.transferred"] is None
    assert all(r in (None, Reason.BAD_TRANSITION, Reason.NOT_AUTHORIZED) for r in reasons.values()), reasons


def test_a_rectification_deadline_at_the_end_of_the_calendar_is_accepted_and_alerted() -> None:
    """9999-12-31 gave OverflowError (internal_error): its end, 24:00 +08:00, is still a
    moment the calendar has."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    payload = SAMPLES["rectification.issued"] | {"deadline": "9999-12-31"}
    record = router.route(signed("rectification.issued", payload), outbox(SENDER), 0, 0, STAMP).record
    assert record is not None
    assert record.decision == "accepted"
    late = NOW.replace(year=9999, month=12, day=31, hour=23)
    alerts = router.overdue(late)
    assert [a.record.decision for a in alerts if a.record is not None] == ["emitted"]


def test_an_envelope_whose_type_is_a_list_gets_a_rejection_notice() -> None:
    """``{"type": []}`` gave TypeError (internal_error) and no notice to its sender."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    routed = router.route(b'{"type": []}', outbox(SENDER), 0, 0, STAMP)
    assert routed.record is not None
    assert routed.record.reason == Reason.SCHEMA
    assert next(o.topic for o in routed.outputs) == f"jointbus.inbox.{SENDER}"


def test_an_event_time_that_is_no_date_is_refused_as_schema() -> None:
    """A signed envelope whose ``time`` matches the pattern but names no day (2026-02-30)
    gave ValueError (internal_error) in the key-window check: it is a schema error."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    kid, key = RINGS[SENDER].signer(REGISTRY, NOW)
    env = compose(
        keyring=RINGS[SENDER],
        registry=REGISTRY,
        event_type="rectification.issued",
        subject=f"rectification/{uuid.uuid4()}",
        recipients=TO,
        payload=SAMPLES["rectification.issued"],
        now=NOW,
    )
    body = {k: v for k, v in env.items() if k != "signature"} | {"time": "2026-02-30" + env["time"][10:]}
    record = router.route(to_wire(sign_envelope(body, key, kid)), outbox(SENDER), 0, 0, STAMP).record
    assert record is not None
    assert record.reason == Reason.SCHEMA
    assert "day is out of range" in record.detail
