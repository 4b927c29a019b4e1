"""Canonical bytes (RFC 8785) and Ed25519 signatures over envelopes."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jointbus.schemas.b64 import b64d, b64e
from jointbus.schemas.canonical import canonical
from jointbus.schemas.errors import ContractError


def signing_input(envelope: dict[str, Any], *, plain: bool = False) -> bytes:
    """The bytes a signature covers: RFC 8785 JSON of every attribute except ``signature``."""
    return canonical({k: v for k, v in envelope.items() if k != "signature"}, plain=plain)


def sign_envelope(unsigned: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    """Return a copy of ``unsigned`` with ``sigkeyid`` set and signed."""
    body = {k: v for k, v in unsigned.items() if k != "signature" and v is not None}
    body["sigkeyid"] = kid
    body["signature"] = b64e(key.sign(signing_input(body)))
    return body


def _signature_bytes(text: str) -> bytes:
    if len(text) == 86 and text[-1] in "AQgw":  # alphabet checked by the schema; no trailing bits
        return base64.urlsafe_b64decode(text + "==")
    return b64d(text, what="signature")


#: answers already known for this call's envelopes ("<kid> <signature>" → valid), from
#: checks done ahead in other processes (``audit verify --jobs``)
_PRECHECKED: ContextVar[Mapping[str, bool] | None] = ContextVar("jointbus_prechecked", default=None)


@contextmanager
def prechecked(answers: Mapping[str, bool] | None) -> Iterator[None]:
    """Within the block, a signature in ``answers`` is taken as already checked, true or
    false (keyed by the key id and the signature text it was checked with)."""
    token = _PRECHECKED.set(answers)
    try:
        yield
    finally:
        _PRECHECKED.reset(token)


def signature_valid(envelope: dict[str, Any], public_key: Ed25519PublicKey, *, plain: bool = False) -> bool:
    """True when the envelope's signature verifies under ``public_key``."""
    signature = envelope.get("signature")
    if not isinstance(signature, str):
        return False
    known = _PRECHECKED.get()
    if known is not None:
        answer = known.get(f"{envelope.get('sigkeyid')} {signature}")
        if answer is not None:
            return answer
    try:
        public_key.verify(_signature_bytes(signature), signing_input(envelope, plain=plain))
    except (InvalidSignature, ValueError, ContractError):
        return False
    return True
