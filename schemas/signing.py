"""Canonical bytes (RFC 8785) and Ed25519 signatures over envelopes."""

from __future__ import annotations

import base64
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


def signature_valid(envelope: dict[str, Any], public_key: Ed25519PublicKey, *, plain: bool = False) -> bool:
    """True when the envelope's signature verifies under ``public_key``."""
    signature = envelope.get("signature")
    if not isinstance(signature, str):
        return False
    try:
        public_key.verify(_signature_bytes(signature), signing_input(envelope, plain=plain))
    except (InvalidSignature, ValueError, ContractError):
        return False
    return True
