"""End-to-end sealing of sensitive payloads (HPKE, RFC 9180).

One random content key per event encrypts the payload (ChaCha20-Poly1305); the content key
is wrapped for each recipient with HPKE base mode, suite X25519 / HKDF-SHA256 /
ChaCha20-Poly1305. The envelope signature covers the sealed form, so the router and the
auditors verify an event they cannot read.

Binding: the HPKE ``info`` names the event and the recipient, and the payload's AEAD
associated data names the event, so a wrapped key or a ciphertext cut from one event and
pasted into another does not open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator

from jointbus.schemas.b64 import b64d, b64e
from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.wiremodel import WireModel, refuse_nulls

SEAL_ALG = "HPKE-X25519-SHA256-ChaCha20Poly1305/ChaCha20Poly1305"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_NONCE = bytes(12)  # each content key encrypts exactly one message, so a fixed nonce is safe


def _canonical_b64(text: str) -> str:
    """Unpadded base64url without trailing bits: one text per byte string."""
    try:
        b64d(text)
    except ContractError as exc:
        raise ValueError(exc.message) from None
    return text


class WrappedKey(WireModel):
    """The content key, HPKE-sealed to one recipient's sealing key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    agency: Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$")]
    kid: Annotated[str, Field(pattern=r"^[a-z0-9-]{2,30}#seal-[0-9]{1,6}$")]
    enc: Annotated[
        str,
        Field(pattern=r"^[A-Za-z0-9_-]{107}$", description="HPKE enc||ct, 80 bytes"),
        AfterValidator(_canonical_b64),
    ]


class SealedData(WireModel):
    """The ``data`` of a sealed envelope."""

    _no_nulls = model_validator(mode="before")(refuse_nulls)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    alg: Literal["HPKE-X25519-SHA256-ChaCha20Poly1305/ChaCha20Poly1305"]
    recipients: Annotated[list[WrappedKey], Field(min_length=1, max_length=16)]
    ciphertext: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{22,}$"), AfterValidator(_canonical_b64)]


def _info(event_id: str, agency: str) -> bytes:
    return f"jointbus/seal/v1|{event_id}|{agency}".encode()


def _aad(event_id: str) -> bytes:
    return f"jointbus/payload/v1|{event_id}".encode()


def seal(
    plaintext: bytes, event_id: str, recipients: Iterable[tuple[str, str, X25519PublicKey]]
) -> dict[str, Any]:
    """Encrypt ``plaintext`` for each (agency, kid, public key); returns the sealed ``data``."""
    content_key = ChaCha20Poly1305.generate_key()
    ciphertext = ChaCha20Poly1305(content_key).encrypt(_NONCE, plaintext, _aad(event_id))
    wrapped = [
        {
            "agency": agency,
            "kid": kid,
            "enc": b64e(_SUITE.encrypt(content_key, pk, _info(event_id, agency))),
        }
        for agency, kid, pk in recipients
    ]
    return {"alg": SEAL_ALG, "recipients": wrapped, "ciphertext": b64e(ciphertext)}


def sealed_data(data: dict[str, Any]) -> SealedData:
    """Validate the structure of sealed ``data`` (``schema`` error if malformed)."""
    try:
        return SealedData.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise rejection(Reason.SCHEMA, f"sealed data {where}: {err['msg']}"[:300]) from None


def open_sealed(
    data: dict[str, Any], event_id: str, agency: str, private_keys: Mapping[str, X25519PrivateKey]
) -> bytes:
    """Open sealed ``data`` as ``agency`` holding ``private_keys`` (by kid).

    ``not_a_recipient`` when nothing is wrapped for this agency or its keys;
    ``seal_broken`` when a wrap or the ciphertext fails authentication.
    """
    sealed = sealed_data(data)
    mine = [w for w in sealed.recipients if w.agency == agency and w.kid in private_keys]
    if not mine:
        raise rejection(Reason.NOT_A_RECIPIENT, f"event {event_id} is not sealed to {agency}")
    wrap = mine[0]
    try:
        content_key = _SUITE.decrypt(
            b64d(wrap.enc, what="enc"), private_keys[wrap.kid], _info(event_id, agency)
        )
        return ChaCha20Poly1305(content_key).decrypt(
            _NONCE, b64d(sealed.ciphertext, what="ciphertext"), _aad(event_id)
        )
    except (InvalidTag, ValueError):
        raise rejection(Reason.SEAL_BROKEN, f"sealed payload of {event_id} does not open") from None
