"""Audit checkpoints as C2SP ``tlog-checkpoint`` text in ``signed-note`` form: part of the
contract, since agencies' witnesses cosign them and the router checks the evidence of an
equivocation alert (two checkpoints of one size with different roots).

Key ID (signed-note, Ed25519): ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jointbus.schemas.errors import ContractError


class NoteError(ContractError):
    """A signed note that does not parse (``bad_note``) or does not verify
    (``bad_checkpoint_signature``)."""

    reason = "bad_note"


ORIGIN = "jointbus.sichuan-chongqing/audit/v1"


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key ID of an Ed25519 key."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size and root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint body (the signed note text)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def sign_checkpoint(cp: Checkpoint, key: Ed25519PrivateKey, name: str = ORIGIN) -> str:
    """The signed note of a checkpoint."""
    text = cp.text()
    sig = key_id(name, key.public_key()) + key.sign(text.encode())
    return f"{text}\n— {name} {base64.b64encode(sig).decode()}\n"


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"not base64: {text[:40]!r}", reason="bad_note") from None


#: the audit log's checkpoints have exactly three body lines (no extension lines) and a
#: size of at most 20 digits: anything else is refused before it is trusted or relayed
_BODY = re.compile(r"[^\n]{1,255}\n(0|[1-9][0-9]{0,19})\n[A-Za-z0-9+/]{43}=\Z")
#: a checkpoint note as the bus passes it on: its body and a few signature lines
MAX_NOTE = 8 * 1024


def open_checkpoint(note: str, public: Ed25519PublicKey, name: str = ORIGIN) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; ``bad_note`` / ``bad_checkpoint_signature``."""
    if len(note) > MAX_NOTE:
        raise NoteError(
            f"a checkpoint note of {len(note)} characters (at most {MAX_NOTE})", reason="bad_note"
        )
    text, sep, sigs = note.partition("\n\n")
    if not _BODY.match(text):
        raise NoteError(
            "not a checkpoint of this log's form (three lines: origin, size, root)", reason="bad_note"
        )
    if not sep or not text:
        raise NoteError("not a signed note", reason="bad_note")
    text += "\n"
    want = key_id(name, public)
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("— "):
            raise NoteError("malformed signature line", reason="bad_note")
        signer, _, b64 = line[2:].rpartition(" ")
        raw = _b64(b64)
        if signer != name or raw[:4] != want:
            continue  # unknown keys are ignored (signed-note)
        try:
            public.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(
                "checkpoint signature does not verify", reason="bad_checkpoint_signature"
            ) from None
        verified = True
    if not verified:
        raise NoteError("no signature by the audit key", reason="bad_checkpoint_signature")
    lines = text.split("\n")
    if lines[0] != name:
        raise NoteError("malformed checkpoint", reason="bad_note")
    root = _b64(lines[2])
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes", reason="bad_note")
    return Checkpoint(lines[0], int(lines[1]), root)
