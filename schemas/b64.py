"""Unpadded base64url, the one binary-to-text encoding of the wire contract."""

from __future__ import annotations

import base64
import binascii
import re

from jointbus.schemas.errors import Reason, rejection

_ALPHABET = re.compile(r"^[A-Za-z0-9_-]*$")


def b64e(data: bytes) -> str:
    """Encode as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, *, what: str = "value") -> bytes:
    """Decode unpadded base64url strictly; ``schema`` error on anything else."""
    if not _ALPHABET.match(text) or len(text) % 4 == 1:
        raise rejection(Reason.SCHEMA, f"{what} is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise rejection(Reason.SCHEMA, f"{what} is not unpadded base64url") from None
    if b64e(decoded) != text:  # non-zero trailing bits: another text for the same bytes
        raise rejection(Reason.SCHEMA, f"{what} is not canonical base64url (trailing bits set)")
    return decoded
