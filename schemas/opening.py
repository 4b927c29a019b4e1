"""Opening a sealed payload: the one decoding path every reader of a sealed event uses.

The router cannot look inside a seal, so whatever a sender sealed reaches its recipients.
Every reader (the SDK's Subscriber, and through it the gateway, ``jointbus inbox`` and
``govern approve``; ``jointbus verify --open-as`` and the conformance suite) decides the
opened plaintext here, exactly as strictly as a plain payload: a size bound, the strict
JSON of envelopes (``loads_with_flag``: UTF-8, no duplicate keys, integers within ±2^53,
no NaN, no lone surrogates, bounded depth), a JSON object, then the payload model.

Reason codes (wire-format §4): a wrap or ciphertext that does not authenticate is
``seal_broken``; a plaintext that opens but is not the type's payload — too large, too deep,
not strict JSON, not an object, not its schema — is ``schema``, the code the same bytes get
as a plain payload. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointbus.schemas.catalog import Payload, parse_payload
from jointbus.schemas.envelope import MAX_DEPTH, MAX_ENVELOPE_BYTES, Envelope, loads_with_flag
from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.sealing import open_sealed

#: the largest plaintext a seal may hold (its base64 ciphertext must fit in an envelope)
MAX_PLAINTEXT_BYTES = MAX_ENVELOPE_BYTES
#: a plain payload is level 2 of its envelope, so it nests at most this deep itself
MAX_PLAINTEXT_DEPTH = MAX_DEPTH - 1


@dataclass(frozen=True)
class Opened:
    """A sealed payload opened and accepted: the JSON object as sent, and its model
    (upcast to the current version)."""

    raw: dict[str, Any]
    payload: Payload


def decode_plaintext(event_type: str, plaintext: bytes) -> Opened:
    """Decide an opened plaintext as the payload of ``event_type``; ``schema`` if it is not."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise rejection(
            Reason.SCHEMA, f"sealed plaintext is {len(plaintext)} bytes; the limit is {MAX_PLAINTEXT_BYTES}"
        )
    try:
        value, _ = loads_with_flag(plaintext, max_depth=MAX_PLAINTEXT_DEPTH)
    except ContractError as exc:  # too_deep or schema as an envelope; one code inside a seal
        raise rejection(Reason.SCHEMA, f"sealed plaintext: {exc.message}"[:300]) from None
    if not isinstance(value, dict):
        raise rejection(Reason.SCHEMA, "sealed plaintext is not a JSON object")
    try:
        payload = parse_payload(event_type, value)
    except ContractError as exc:
        raise rejection(Reason.SCHEMA, f"sealed plaintext: {exc.message}"[:300]) from None
    return Opened(value, payload)


def open_payload(envelope: Envelope, agency: str, private_keys: Mapping[str, X25519PrivateKey]) -> Opened:
    """Open ``envelope``'s sealed ``data`` as ``agency`` and decide the plaintext:
    ``not_a_recipient``, ``seal_broken`` (``open_sealed``) or ``schema`` (above)."""
    plaintext = open_sealed(envelope.data, envelope.id, agency, private_keys)
    return decode_plaintext(envelope.type, plaintext)
