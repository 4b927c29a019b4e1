"""Private keyrings and the lifecycle of the federation's keys: create, rotate, revoke.

Pure functions over registry values; writing keyrings to disk is the caller's business
(``streams.keystore``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pydantic import BaseModel, ConfigDict, PrivateAttr

from jointbus.schemas.b64 import b64d, b64e
from jointbus.schemas.errors import JointbusError, Reason, rejection
from jointbus.schemas.registry import (
    AUDIT,
    DEVELOPMENT_AGENCIES,
    ROUTER,
    KeyRecord,
    Member,
    Policy,
    Registry,
)

Purpose = Literal["sign", "seal", "witness"]
#: the key id tag of each purpose (``<member>#<tag>-<serial>``)
KID_TAG: dict[str, str] = {"sign": "sig", "seal": "seal", "witness": "wit"}
AGENCY_ID = re.compile(r"[a-z]{2}-[a-z]{2,20}")  # province, dash, place (svc-* are services)


class Keyring(BaseModel):
    """One member's private keys, by key id (raw 32-byte seeds, base64url)."""

    model_config = ConfigDict(extra="forbid")
    owner: str
    keys: dict[str, str]
    _parsed: dict[str, Ed25519PrivateKey] = PrivateAttr(default_factory=dict)

    def signer(self, registry: Registry, at: datetime) -> tuple[str, Ed25519PrivateKey]:
        """The key id and private key this member signs with at ``at``."""
        return self._ed25519(registry, "sign", at)

    def witness(self, registry: Registry, at: datetime) -> tuple[str, Ed25519PrivateKey]:
        """The key id and private key this agency's witness cosigns with at ``at``."""
        return self._ed25519(registry, "witness", at)

    def _ed25519(
        self, registry: Registry, purpose: Literal["sign", "witness"], at: datetime
    ) -> tuple[str, Ed25519PrivateKey]:
        record = registry.current_key(self.owner, purpose, at)
        if record.kid not in self.keys:
            raise rejection(Reason.UNKNOWN_KEY, f"keyring of {self.owner} lacks {record.kid}")
        key = self._parsed.get(record.kid)
        if key is None:
            key = Ed25519PrivateKey.from_private_bytes(b64d(self.keys[record.kid]))
            self._parsed[record.kid] = key
        return record.kid, key

    def openers(self) -> dict[str, X25519PrivateKey]:
        """Every sealing private key, by kid: old ones still open old events."""
        return {
            kid: X25519PrivateKey.from_private_bytes(b64d(seed))
            for kid, seed in self.keys.items()
            if "#seal-" in kid
        }


def _raw_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def new_key(owner: str, purpose: Purpose, serial: int, not_before: datetime) -> tuple[KeyRecord, str]:
    """A fresh key pair: its public registry record and its private seed (base64url)."""
    private: Ed25519PrivateKey | X25519PrivateKey
    if purpose in ("sign", "witness"):
        private = Ed25519PrivateKey.generate()
        algorithm: Literal["Ed25519", "X25519"] = "Ed25519"
    else:
        private = X25519PrivateKey.generate()
        algorithm = "X25519"
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = f"{owner}#{KID_TAG[purpose]}-{serial}"
    record = KeyRecord(
        kid=kid,
        owner=owner,
        purpose=purpose,
        algorithm=algorithm,
        public_key=b64e(public),
        not_before=not_before,
    )
    return record, b64e(_raw_private(private))


def members() -> tuple[Member, ...]:
    """The development federation's agencies and the bus services, with their default rights."""
    from jointbus.schemas.catalog import rights_of  # the catalog is heavy; most callers never need it

    agencies = tuple(
        Member(
            id=a.id,
            name_zh=a.name_zh,
            name_en=a.name_en,
            kind="agency",
            region=a.region,
            publish=rights_of("agency"),
        )
        for a in DEVELOPMENT_AGENCIES
    )
    services = (
        Member(
            id=ROUTER,
            name_zh="协作总线路由",
            name_en="jointbus router",
            kind="service",
            region="bus",
            publish=rights_of("router"),
        ),
        Member(
            id=AUDIT,
            name_zh="协作总线审计日志",
            name_en="jointbus audit log",
            kind="service",
            region="bus",
            publish=(),
        ),
    )
    return agencies + services


#: who chairs the joint meeting in a new development federation
FIRST_CHAIR = "cq-rongchang"


def new_federation(
    now: datetime,
    chair: str = FIRST_CHAIR,
    witness_quorum: int | None = None,
    open_per_pair: int | None = None,
) -> tuple[Registry, dict[str, Keyring]]:
    """A development federation: registry v1 (``chair`` chairing; checkpoints trusted once
    ``witness_quorum`` agencies cosigned them, and ``open_per_pair`` obligations open per
    pair, when given) and every member's keyring."""
    records: list[KeyRecord] = []
    rings: dict[str, Keyring] = {}
    for member in members():
        ring = Keyring(owner=member.id, keys={})
        purposes: tuple[Purpose, ...] = ("sign", "seal", "witness") if member.kind == "agency" else ("sign",)
        for purpose in purposes:
            record, seed = new_key(member.id, purpose, 1, now)
            records.append(record)
            ring.keys[record.kid] = seed
        rings[member.id] = ring
    policy = Policy(witness_quorum=witness_quorum, open_per_pair=open_per_pair)
    registry = Registry(
        version=1, issued_at=now, members=members(), keys=tuple(records), chair=chair, policy=policy
    )
    return registry, rings


def admit(
    registry: Registry,
    agency: str,
    *,
    name_zh: str,
    name_en: str,
    region: Literal["sichuan", "chongqing"],
    now: datetime,
) -> tuple[Registry, Keyring]:
    """A new member agency joins: its entry (with the agencies' rights) and a signing and a
    sealing key valid from ``now``, in the registry's next version; returns it and the new
    member's keyring. Its topics, Kafka user and ACLs follow from the registry
    (``streams.provision``). Raises ``JointbusError``: ``exists`` for a member already there,
    ``invalid_member`` for an id that is not an agency's.
    """
    if any(m.id == agency for m in registry.members):
        raise JointbusError(f"{agency} is already a member of registry v{registry.version}", reason="exists")
    if not AGENCY_ID.fullmatch(agency):
        raise JointbusError(
            f"{agency[:60]!r} is not an agency id (two letters, a dash, 2-20 letters)",
            reason="invalid_member",
        )
    from jointbus.schemas.catalog import rights_of

    member = Member(
        id=agency, name_zh=name_zh, name_en=name_en, kind="agency", region=region, publish=rights_of("agency")
    )
    ring = Keyring(owner=agency, keys={})
    records = []
    purposes: tuple[Purpose, ...] = ("sign", "seal", "witness")
    for purpose in purposes:
        record, seed = new_key(agency, purpose, 1, now)
        records.append(record)
        ring.keys[record.kid] = seed
    agencies = [m for m in registry.members if m.kind == "agency"]
    services = [m for m in registry.members if m.kind != "agency"]
    updated = registry.model_copy(
        update={
            "version": registry.version + 1,
            "issued_at": now,
            "members": (*agencies, member, *services),
            "keys": (*registry.keys, *records),
        }
    )
    return Registry.model_validate(updated.model_dump()), ring


def rotate(
    registry: Registry, ring: Keyring, purpose: Purpose, now: datetime, overlap: timedelta
) -> tuple[Registry, Keyring]:
    """Add a new key for ``ring.owner``; the old one stays valid for ``overlap`` then expires.

    Old keys are never removed, so every event they signed still verifies.
    """
    mine = [k for k in registry.keys if k.owner == ring.owner and k.purpose == purpose]
    serial = max(int(k.kid.rsplit("-", 1)[1]) for k in mine) + 1 if mine else 1
    record, seed = new_key(ring.owner, purpose, serial, now)
    keys = [
        k.model_copy(update={"not_after": now + overlap})
        if k in mine and (k.not_after is None or k.not_after > now + overlap)
        else k
        for k in registry.keys
    ]
    updated = registry.model_copy(
        update={"version": registry.version + 1, "issued_at": now, "keys": (*keys, record)}
    )
    return Registry.model_validate(updated.model_dump()), Keyring(
        owner=ring.owner, keys={**ring.keys, record.kid: seed}
    )


def revoke(registry: Registry, kid: str, at: datetime, reason: str) -> Registry:
    """Mark ``kid`` revoked from ``at``: events arriving after that are rejected."""
    registry.key(kid)
    keys = tuple(
        k.model_copy(update={"revoked_at": at, "revocation_reason": reason}) if k.kid == kid else k
        for k in registry.keys
    )
    updated = registry.model_copy(update={"version": registry.version + 1, "issued_at": at, "keys": keys})
    return Registry.model_validate(updated.model_dump())
