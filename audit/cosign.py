"""C2SP ``tlog-cosignature`` (Ed25519 ``cosignature/v1``): an agency's witness key states
that, as of a time, the checkpoint is the largest consistent tree head it has seen.

Signed message: ``cosignature/v1\\n`` + ``time <seconds>\\n`` + the checkpoint body.
Signature line: ``— <name> base64(key ID || u64 timestamp || Ed25519 signature)``, key ID =
``SHA-256(name || 0x0A || 0x04 || public key)[:4]``. A witness's name is
``jointbus.sichuan-chongqing/witness/<agency>`` (one per agency; its key is the agency's
``witness`` key, distinct from its signing key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jointbus.audit.errors import AuditError
from jointbus.audit.notes import Checkpoint

COSIGNATURE_V1 = 0x04
#: a witness's cosigner name: a schema-less URL naming the bus and the agency (C2SP)
WITNESS_PREFIX = "jointbus.sichuan-chongqing/witness/"


def witness_name(agency: str) -> str:
    """The cosigner name of ``agency``'s witness."""
    return WITNESS_PREFIX + agency


def cosigner_key_id(name: str, public: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID of an Ed25519 cosigner (signature type 0x04)."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_V1]) + raw).digest()[:4]


def cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """What a cosignature signs: header, time line, the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.text().encode()


def cosign(checkpoint: Checkpoint, key: Ed25519PrivateKey, name: str, timestamp: int) -> str:
    """The signature line of a cosignature (``— name base64``, no newline)."""
    if not 0 <= timestamp < 2**63:
        raise AuditError(f"timestamp {timestamp} out of range", reason="bad_cosignature")
    signature = key.sign(cosigned_message(checkpoint, timestamp))
    blob = cosigner_key_id(name, key.public_key()) + struct.pack(">Q", timestamp) + signature
    return f"— {name} {base64.b64encode(blob).decode()}"


@dataclass(frozen=True)
class Cosignature:
    """A cosignature that verified: who, when (POSIX seconds), and its line."""

    name: str
    timestamp: int
    line: str


def verify_cosignature(
    line: str, checkpoint: Checkpoint, name: str, public: Ed25519PublicKey
) -> Cosignature | None:
    """The cosignature on ``line`` if it is ``name``'s and verifies over ``checkpoint``;
    None for a line of another signer (signed notes ignore unknown signers); a line that
    claims to be ``name``'s key but does not verify is ``bad_cosignature``."""
    if not line.startswith("— "):
        return None
    signer, _, encoded = line[2:].rpartition(" ")
    if signer != name:
        return None
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise AuditError(f"cosignature of {name} is not base64", reason="bad_cosignature") from None
    if len(blob) != 4 + 8 + 64 or blob[:4] != cosigner_key_id(name, public):
        return None  # another key of the same name (rotated): not this one's
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    try:
        public.verify(blob[12:], cosigned_message(checkpoint, timestamp))
    except InvalidSignature:
        raise AuditError(f"cosignature of {name} does not verify", reason="bad_cosignature") from None
    return Cosignature(name, timestamp, line)


def signature_lines(note: str) -> list[str]:
    """The signature lines of a signed note (after the blank line)."""
    _, _, sigs = note.partition("\n\n")
    return [line for line in sigs.splitlines() if line.startswith("— ")]


def with_cosignatures(note: str, lines: list[str]) -> str:
    """``note`` with ``lines`` appended to its signatures (each once)."""
    present = set(signature_lines(note))
    extra = [line for line in lines if line not in present]
    return note + "".join(f"{line}\n" for line in extra)
