"""C2SP formats: ``tlog-proof`` files, and the checkpoints of ``schemas.checkpoints`` with
their errors as the audit log's (``AuditError``, same reason codes)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jointbus.audit.errors import AuditError
from jointbus.schemas.checkpoints import ORIGIN, Checkpoint, NoteError, key_id, sign_checkpoint
from jointbus.schemas.checkpoints import open_checkpoint as _open_checkpoint

__all__ = [
    "ORIGIN",
    "PROOF_HEADER",
    "Checkpoint",
    "Proof",
    "key_id",
    "open_checkpoint",
    "parse_proof",
    "proof_text",
    "sign_checkpoint",
]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def open_checkpoint(note: str, public: Ed25519PublicKey, name: str = ORIGIN) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; ``bad_note`` / ``bad_checkpoint_signature``."""
    try:
        return _open_checkpoint(note, public, name)
    except NoteError as exc:
        raise AuditError(exc.message, reason=exc.reason) from None


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuditError(f"not base64: {text[:40]!r}", reason="bad_note") from None


def proof_text(index: int, proof: list[bytes], signed_checkpoint: str, record: bytes) -> str:
    """A C2SP tlog-proof; ``extra`` carries the audit record so the proof stands alone."""
    lines = [PROOF_HEADER, f"extra {base64.b64encode(record).decode()}", f"index {index}"]
    lines += [base64.b64encode(p).decode() for p in proof]
    return "\n".join(lines) + "\n\n" + signed_checkpoint


@dataclass(frozen=True)
class Proof:
    """A parsed tlog-proof."""

    record: bytes
    index: int
    path: list[bytes]
    checkpoint_note: str


def parse_proof(text: str) -> Proof:
    """Parse a tlog-proof file (structure only; ``check_proof`` verifies it)."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines or lines[0] != PROOF_HEADER:
        raise AuditError("not a c2sp.org/tlog-proof@v1 file", reason="bad_proof")
    rest = lines[1:]
    record = b""
    if rest and rest[0].startswith("extra "):
        record = _b64(rest.pop(0)[6:])
    if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit():
        raise AuditError("missing index line", reason="bad_proof")
    index = int(rest.pop(0)[6:])
    return Proof(record, index, [_b64(line) for line in rest if line], note)
