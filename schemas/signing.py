"""Canonical bytes (RFC 8785) and Ed25519 signatures over envelopes."""

from __future__ import annotations

from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.b64 import b64d, b64e
from schemas.errors import ContractError


def signing_input(envelope: dict[str, Any]) -> bytes:
    """The bytes a signature covers: RFC 8785 JSON of every attribute except ``signature``."""
    return rfc8785.dumps({k: v for k, v in envelope.items() if k != "signature"})


def sign_envelope(unsigned: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    """Return a copy of ``unsigned`` with ``sigkeyid`` set and signed."""
    body = {k: v for k, v in unsigned.items() if k != "signature" and v is not None}
    body["sigkeyid"] = kid
    body["signature"] = b64e(key.sign(signing_input(body)))
    return body


def signature_valid(envelope: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    """True when the envelope's signature verifies under ``public_key``."""
    signature = envelope.get("signature")
    if not isinstance(signature, str):
        return False
    try:
        public_key.verify(b64d(signature, what="signature"), signing_input(envelope))
    except (InvalidSignature, ValueError, ContractError):
        return False
    return True
