"""The signed wire contract: each test is named after the attack or mistake it stops."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from jointbus.schemas.b64 import b64d
from jointbus.schemas.catalog import CATALOG, CURRENT, parse_payload
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import MAX_ENVELOPE_BYTES, to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.clue import ClueTransferred
from jointbus.schemas.ids import format_time, is_uuid7, utcnow, uuid7, uuid7_time
from jointbus.schemas.keys import Keyring, new_federation, revoke, rotate
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.schemas.sealing import open_sealed
from jointbus.schemas.signing import sign_envelope
from jointbus.schemas.verify import verify_event
from tests.samples import SAMPLES

NOW = utcnow()
REGISTRY, RINGS = new_federation(NOW - timedelta(days=30))


def event(
    family: str = "rectification.progress_reported",
    sender: str = "sc-zigong",
    recipients: list[str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return compose(
        keyring=kw.pop("keyring", RINGS[sender]),
        registry=kw.pop("registry", REGISTRY),
        event_type=family,
        subject=kw.pop("subject", f"{CURRENT[family].aggregate}/{uuid7()}"),
        recipients=recipients or ["cq-yongchuan", "sc-luzhou"],
        payload=kw.pop("payload", SAMPLES[family]),
        now=kw.pop("now", NOW),
        **kw,
    )


def resign(env: dict[str, Any], ring: Keyring, registry: Registry = REGISTRY) -> dict[str, Any]:
    kid, key = ring.signer(registry, NOW)
    return sign_envelope(env, key, kid)


def rejected(wire: bytes | dict[str, Any], registry: Registry = REGISTRY, **kw: Any) -> str:
    if isinstance(wire, dict):
        wire = to_wire(wire)
    with pytest.raises(ContractError) as info:
        verify_event(wire, registry, received_at=kw.pop("received_at", NOW), **kw)
    return info.value.reason


# ------------------------------------------------------------------------------ happy path
@pytest.mark.parametrize("family", sorted(CURRENT))
def test_every_event_type_round_trips(family: str) -> None:
    """Each current type signs, serializes, verifies and reads back as its model."""
    sender = ROUTER if "agency" not in CURRENT[family].publishers else "sc-zigong"
    env = event(family, sender=sender)
    verified = verify_event(to_wire(env), REGISTRY, received_at=NOW)
    spec = CURRENT[family]
    if spec.sensitive:
        assert verified.payload is None
        plaintext = open_sealed(env["data"], env["id"], "cq-yongchuan", RINGS["cq-yongchuan"].openers())
        payload = parse_payload(env["type"], json.loads(plaintext))
    else:
        payload = verified.payload
    assert payload == spec.model.model_validate(SAMPLES[family])


def test_event_ids_are_time_ordered_uuid7() -> None:
    """Ids sort by creation time, even many in one millisecond."""
    ids = [uuid7() for _ in range(5000)]
    assert all(is_uuid7(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert abs((uuid7_time(ids[0]) - utcnow()).total_seconds()) < 5


def test_v1_clue_is_upcast_to_v2_after_verification() -> None:
    """History written with clue.transferred.v1 still reads as today's model."""
    v1 = {"title": "旧线索", "content": "内容", "person_name": "赵某", "person_unit": "某局"}
    env = compose(
        keyring=RINGS["sc-zigong"],
        registry=REGISTRY,
        event_type="org.jointbus.clue.transferred.v1",
        subject=f"clue/{uuid7()}",
        recipients=["cq-dazu"],
        payload=v1,
        now=NOW,
    )
    verify_event(to_wire(env), REGISTRY, received_at=NOW)
    opened = open_sealed(env["data"], env["id"], "cq-dazu", RINGS["cq-dazu"].openers())
    upcast = parse_payload(env["type"], json.loads(opened))
    assert isinstance(upcast, ClueTransferred)
    assert upcast.persons[0].name == "赵某"
    assert CATALOG["org.jointbus.clue.transferred.v1"].upcast is not None


# ------------------------------------------------------------------------------- sealing
def test_sealed_clue_opens_for_each_recipient() -> None:
    """Every named recipient opens the clue with its own sealing key."""
    env = event("clue.transferred", recipients=["cq-yongchuan", "sc-luzhou", "cq-dazu"])
    for agency in env["recipients"]:
        opened = json.loads(open_sealed(env["data"], env["id"], agency, RINGS[agency].openers()))
        assert opened["persons"][0]["name"] == "李某"


def test_clue_content_is_never_plaintext_on_the_wire() -> None:
    """The official's name and the allegation are not in the wire bytes."""
    wire = to_wire(event("clue.transferred")).decode()
    assert "李某" not in wire
    assert "违规分包" not in wire


def test_non_recipient_cannot_open_sealed_clue() -> None:
    """An agency not named cannot open the clue, even holding all its own keys."""
    env = event("clue.transferred")
    with pytest.raises(ContractError) as info:
        open_sealed(env["data"], env["id"], "sc-yibin", RINGS["sc-yibin"].openers())
    assert info.value.reason == Reason.NOT_A_RECIPIENT


def test_non_recipient_cannot_open_by_claiming_a_recipients_wrap() -> None:
    """Using another agency's wrapped key with one's own private key fails authentication."""
    env = event("clue.transferred")
    stolen = {"cq-yongchuan#seal-1": RINGS["sc-yibin"].openers()["sc-yibin#seal-1"]}
    with pytest.raises(ContractError) as info:
        open_sealed(env["data"], env["id"], "cq-yongchuan", stolen)
    assert info.value.reason == Reason.SEAL_BROKEN


def test_sealed_payload_pasted_into_another_event_does_not_open() -> None:
    """Ciphertext and wraps are bound to their event id (cut-and-paste attack)."""
    a, b = event("clue.transferred"), event("clue.transferred")
    with pytest.raises(ContractError) as info:
        open_sealed(a["data"], b["id"], "cq-yongchuan", RINGS["cq-yongchuan"].openers())
    assert info.value.reason == Reason.SEAL_BROKEN


def test_clue_sent_in_plaintext_is_rejected() -> None:
    """A sensitive type whose data is not sealed is refused (a leak, not just a mistake)."""
    env = event("clue.acknowledged")
    env.update(type=CURRENT["clue.transferred"].type, data=SAMPLES["clue.transferred"])
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.NOT_SEALED


def test_sealed_to_a_different_set_than_recipients_is_rejected() -> None:
    """Recipients list and sealed wraps must name the same agencies."""
    env = event("clue.transferred")
    env["recipients"] = ["cq-yongchuan", "sc-luzhou", "sc-yibin"]
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.SCHEMA


# ----------------------------------------------------------------------- authenticity
def test_forged_signature_is_rejected() -> None:
    """A signature made with a key that is not the sender's fails."""
    env = event()
    forged = sign_envelope(env, RINGS["sc-yibin"].signer(REGISTRY, NOW)[1], env["sigkeyid"])
    assert rejected(forged) == Reason.BAD_SIGNATURE


def test_altered_recipients_after_signing_is_rejected() -> None:
    """Adding a recipient after signing (to leak an event) breaks the signature."""
    env = event()
    env["recipients"] = [*env["recipients"], "sc-yibin"]
    assert rejected(env) == Reason.BAD_SIGNATURE


def test_signature_of_another_event_is_rejected() -> None:
    """A valid signature transplanted from another event of the same sender fails."""
    a, b = event(), event()
    a["signature"] = b["signature"]
    assert rejected(a) == Reason.BAD_SIGNATURE


def test_impersonating_another_agency_is_rejected() -> None:
    """Claiming another agency as source while signing with one's own key: unknown_key."""
    env = event(sender="sc-yibin")
    env["source"] = "urn:jointbus:sc-zigong"
    assert rejected(env) == Reason.UNKNOWN_KEY


def test_unregistered_sender_is_rejected() -> None:
    """A source that is not a member of the federation is refused."""
    env = event()
    env["source"] = "urn:jointbus:sc-chengdu"
    assert rejected(env) == Reason.UNKNOWN_SENDER


def test_unknown_signing_key_is_rejected() -> None:
    """A key id the registry does not know is refused."""
    env = event()
    env["sigkeyid"] = "sc-zigong#sig-9"
    assert rejected(env) == Reason.UNKNOWN_KEY


def test_revoked_key_cannot_sign_new_events() -> None:
    """After revocation, an event signed with the stolen key is refused, whatever its time."""
    registry = revoke(REGISTRY, "sc-zigong#sig-1", NOW - timedelta(minutes=1), "laptop stolen")
    env = event(now=NOW - timedelta(hours=2))  # back-dated by the thief
    assert rejected(env, registry) == Reason.KEY_REVOKED


def test_events_accepted_before_revocation_still_verify_on_replay() -> None:
    """Replay judges revocation at the recorded receive time, so history stays valid."""
    registry = revoke(REGISTRY, "sc-zigong#sig-1", NOW, "rotation after audit")
    env = event(now=NOW - timedelta(hours=1))
    verify_event(to_wire(env), registry, received_at=NOW - timedelta(hours=1), check_skew=False)


def test_expired_key_is_rejected() -> None:
    """A key used after its validity window ended is refused."""
    registry, ring = rotate(
        REGISTRY, RINGS["sc-zigong"], "sign", NOW - timedelta(days=2), overlap=timedelta(days=1)
    )
    old_key = ring.keys["sc-zigong#sig-1"]
    env = event(
        registry=registry,
        keyring=Keyring(owner="sc-zigong", keys={"sc-zigong#sig-1": old_key}),
        now=NOW - timedelta(days=3),
    )
    env["time"] = format_time(NOW)
    env = sign_envelope(env, RINGS["sc-zigong"].signer(REGISTRY, NOW)[1], "sc-zigong#sig-1")
    assert rejected(env, registry) == Reason.KEY_EXPIRED


def test_key_rotation_keeps_old_events_verifiable() -> None:
    """Events signed with the old key before rotation verify; new ones use the new key."""
    old = event(now=NOW - timedelta(days=3))
    registry, ring = rotate(
        REGISTRY, RINGS["sc-zigong"], "sign", NOW - timedelta(days=2), overlap=timedelta(days=1)
    )
    new = event(registry=registry, keyring=ring)
    assert new["sigkeyid"] == "sc-zigong#sig-2"
    verify_event(to_wire(old), registry, received_at=NOW - timedelta(days=3))
    verify_event(to_wire(new), registry, received_at=NOW)


def test_future_dated_event_is_rejected_as_clock_skew() -> None:
    """An event dated beyond the allowed skew (pre-dating a deadline) is refused."""
    assert rejected(event(now=NOW + timedelta(minutes=30))) == Reason.CLOCK_SKEW


# ------------------------------------------------------------------------ authorization
def test_agency_cannot_forge_router_rejection_notice() -> None:
    """Only the router may publish rejection notices."""
    env = event("clue.acknowledged")
    env.update(type=CURRENT["rejection"].type, data=SAMPLES["rejection"], subject="notice/x")
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.NOT_AUTHORIZED


def test_router_cannot_publish_clues() -> None:
    """A service key is limited to its own event types."""
    env = event("clue.acknowledged", sender=ROUTER)  # compose checks only the payload
    assert rejected(env) == Reason.NOT_AUTHORIZED


def test_unknown_recipient_is_rejected() -> None:
    """Addressing an agency outside the federation is refused."""
    env = event()
    env["recipients"] = ["cq-yongchuan", "sc-chengdu"]
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.UNKNOWN_RECIPIENT


def test_duplicate_recipient_is_rejected() -> None:
    """Naming one recipient twice (double delivery) is refused."""
    env = event()
    env["recipients"] = ["cq-yongchuan", "cq-yongchuan"]
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.DUPLICATE_RECIPIENT


def test_addressing_oneself_is_rejected() -> None:
    """A sender may not put itself among the recipients."""
    env = event()
    env["recipients"] = ["cq-yongchuan", "sc-zigong"]
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.NOT_AUTHORIZED


# ------------------------------------------------------------------------------- schema
def test_oversized_envelope_is_rejected() -> None:
    """Envelopes above the size limit are refused before parsing (memory exhaustion)."""
    assert rejected(b"{" + b" " * MAX_ENVELOPE_BYTES + b"}") == Reason.TOO_LARGE


def test_unknown_event_type_is_rejected() -> None:
    """A well-formed but uncatalogued type is refused."""
    env = event()
    env["type"] = "org.jointbus.clue.exfiltrated.v1"
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.UNKNOWN_TYPE


def test_duplicate_key_smuggling_is_rejected() -> None:
    """A JSON object with a key twice (parsers disagree which wins) is refused."""
    env = event()
    wire = to_wire(env).replace(b'"subject":', b'"subject":"clue/evil","subject":', 1)
    assert rejected(wire) == Reason.SCHEMA


def test_unknown_extension_attribute_is_rejected() -> None:
    """Unsigned-looking extras are refused, not ignored."""
    env = event()
    env["priority"] = "high"
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.SCHEMA


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"[]",
        b"null",
        b'{"specversion": NaN}',
        b"\xff\xfe",
        b'{"a": 1.5}',
        b'{"a": 1e400}',
        b'{"a": 99999999999999999999}',
    ],
    ids=["empty", "array", "null", "nan", "bad-utf8", "float", "huge-float", "huge-int"],
)
def test_malformed_json_is_rejected_as_schema(wire: bytes) -> None:
    """Non-JSON, non-objects, NaN, floats and unsafe integers are refused."""
    assert rejected(wire) == Reason.SCHEMA


def test_invalid_payload_is_rejected_as_schema() -> None:
    """A payload that breaks its model (percent above 100) is refused."""
    env = event()
    env["data"] = {"percent_complete": 140, "note": "x"}
    assert rejected(resign(env, RINGS["sc-zigong"])) == Reason.SCHEMA


def test_publisher_finds_its_payload_mistake_before_sending() -> None:
    """compose validates the payload, so a publisher's error surfaces locally."""
    with pytest.raises(ContractError) as info:
        event(payload={"percent_complete": "lots", "note": "x"})
    assert info.value.reason == Reason.SCHEMA


def test_signature_text_with_trailing_bits_set_is_rejected() -> None:
    """Malleability: the same signature bytes written as another base64url text (trailing
    bits set in the last character) would give one event two wire forms; refused."""
    env = event()
    last = env["signature"][-1]
    assert last in "AQgw"  # canonical: the last character's low four bits are zero
    env["signature"] = env["signature"][:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[last]
    with pytest.raises(ContractError):
        verify_event(to_wire(env), REGISTRY, received_at=NOW)
    with pytest.raises(ContractError, match="canonical"):
        b64d("AB", what="x")  # two characters for one byte: the low four bits must be zero


def test_explicit_null_attribute_is_rejected() -> None:
    """An optional attribute is omitted, never null: `"causationid": null` is another wire
    form of the same event, refused as a schema error."""
    env = event()
    env["causationid"] = None
    with pytest.raises(ContractError) as info:
        verify_event(to_wire(env), REGISTRY, received_at=NOW)
    assert info.value.reason == "schema"
