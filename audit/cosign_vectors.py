"""Test vectors of witness cosignatures (``schemas/vectors/cosignature-v1.json``): a
checkpoint signed by the vector audit key, cosigned by two agencies' vector witness keys at
a fixed time, with every intermediate value an implementer of C2SP tlog-cosignature needs."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jointbus.audit.cosign import cosign, cosigned_message, cosigner_key_id, with_cosignatures, witness_name
from jointbus.audit.notes import ORIGIN, Checkpoint, key_id, sign_checkpoint
from jointbus.schemas.vectors import VECTOR_TIME, seed

COSIGNATURE_FILE = "cosignature-v1.json"
WITNESSES = ("sc-zigong", "cq-yongchuan")


def _key(kid: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed(kid))


def _public(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def build() -> dict[str, Any]:
    """The vector document (deterministic: Ed25519, fixed keys and time)."""
    checkpoint = Checkpoint(ORIGIN, 12, hashlib.sha256(b"jointbus cosignature vector root").digest())
    audit = _key("svc-audit#sig-1")
    note = sign_checkpoint(checkpoint, audit)
    timestamp = int(VECTOR_TIME.timestamp())
    cosigners = []
    lines = []
    for agency in WITNESSES:
        key = _key(f"{agency}#wit-1")
        name = witness_name(agency)
        line = cosign(checkpoint, key, name, timestamp)
        lines.append(line)
        cosigners.append(
            {
                "name": name,
                "timestamp": timestamp,
                "kid": f"{agency}#wit-1",
                "public_key_base64": _public(key),
                "key_id_hex": cosigner_key_id(name, key.public_key()).hex(),
                "signed_message": cosigned_message(checkpoint, timestamp).decode(),
                "signature_line": line,  # without its final newline
            }
        )
    return {
        "description": "jointbus witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1); "
        "see docs/witnesses.md",
        "keys": "every private key is SHA-256 of the UTF-8 bytes of 'jointbus test vector key ' + kid: "
        "an Ed25519 seed",
        "notes": "every cosigner signs the same message (the Ed25519 cosignature/v1 message does not name "
        "the cosigner: that is why each witness has a key of its own); signature_line is a note "
        "signature line without its final newline; the checkpoint's root is SHA-256 of "
        "'jointbus cosignature vector root', not a tree",
        "log": {
            "audit_kid": "svc-audit#sig-1",
            "origin": ORIGIN,
            "audit_key_name": ORIGIN,
            "audit_public_key_base64": _public(audit),
            "audit_key_id_hex": key_id(ORIGIN, audit.public_key()).hex(),
        },
        "checkpoint_body": checkpoint.text(),
        "timestamp": timestamp,
        "cosigners": cosigners,
        "cosigned_note": with_cosignatures(note, lines),
    }
