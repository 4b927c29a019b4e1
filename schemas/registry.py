"""The federation's public registry: members, their keys (with validity windows and
revocation) and their rights.

The registry is data, signed and versioned by governance; this module only reads it and
answers questions such as "which key of this agency was valid at this time".
"""

from __future__ import annotations

import fnmatch
import hashlib
from datetime import datetime
from functools import cached_property
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jointbus.schemas.b64 import b64d
from jointbus.schemas.canonical import canonical
from jointbus.schemas.errors import Reason, rejection
from jointbus.schemas.wiremodel import WireModel, refuse_nulls

MemberId = Annotated[str, Field(pattern=r"^([a-z]{2}-[a-z]{2,20}|svc-[a-z]{2,20})$")]


class Agency(BaseModel):
    """An agency of the development federation (``schemas.keys.new_federation``)."""

    model_config = ConfigDict(frozen=True)
    id: str
    name_zh: str
    name_en: str
    region: Literal["sichuan", "chongqing"]
    level: Literal["city", "district"]


#: the content of a new development federation: the eight agencies of the mechanism
#: (docs/architecture.md). Only ``schemas.keys`` reads it, to write them into a new registry;
#: who is a member is the registry's business (``Registry.agencies``), never this constant's.
DEVELOPMENT_AGENCIES: tuple[Agency, ...] = (
    Agency(id="sc-zigong", name_zh="自贡市纪委监委", name_en="Zigong", region="sichuan", level="city"),
    Agency(id="sc-luzhou", name_zh="泸州市纪委监委", name_en="Luzhou", region="sichuan", level="city"),
    Agency(
        id="sc-neijiang",
        name_zh="内江市纪委监委",
        name_en="Neijiang",
        region="sichuan",
        level="city",
    ),
    Agency(id="sc-yibin", name_zh="宜宾市纪委监委", name_en="Yibin", region="sichuan", level="city"),
    Agency(
        id="cq-jiangjin",
        name_zh="江津区纪委监委",
        name_en="Jiangjin",
        region="chongqing",
        level="district",
    ),
    Agency(
        id="cq-yongchuan",
        name_zh="永川区纪委监委",
        name_en="Yongchuan",
        region="chongqing",
        level="district",
    ),
    Agency(id="cq-dazu", name_zh="大足区纪委监委", name_en="Dazu", region="chongqing", level="district"),
    Agency(
        id="cq-rongchang",
        name_zh="荣昌区纪委监委",
        name_en="Rongchang",
        region="chongqing",
        level="district",
    ),
)

#: the bus's own services: the router signs rejection notices and overdue alerts,
#: the audit log signs checkpoints.
ROUTER = "svc-router"
AUDIT = "svc-audit"
SERVICES = (ROUTER, AUDIT)


class Member(WireModel):
    """A party that signs: an agency or a bus service."""

    id: MemberId
    name_zh: str
    name_en: str
    kind: Literal["agency", "service"]
    region: Literal["sichuan", "chongqing", "bus"]
    publish: tuple[str, ...] = Field(description="event families this member may publish (globs)")
    suspended: bool = Field(
        default=False, description="suspended by the members' joint decision: may not publish or vote"
    )

    def may_publish(self, family: str) -> bool:
        """True when one of the member's rights covers ``family`` (never while suspended)."""
        if self.suspended:
            return False
        allowed = self._allowed.get(family)
        if allowed is None:
            allowed = any(fnmatch.fnmatchcase(family, pattern) for pattern in self.publish)
            self._allowed[family] = allowed
        return allowed

    @cached_property
    def _allowed(self) -> dict[str, bool]:
        return {}


class KeyRecord(WireModel):
    """A public key with its owner, purpose and validity window."""

    kid: Annotated[str, Field(pattern=r"^[a-z0-9-]{2,30}#(sig|seal|wit)-[0-9]{1,6}$")]
    owner: MemberId
    purpose: Literal["sign", "seal", "witness"] = Field(
        description="sign: events (Ed25519); seal: payloads sealed to the member (X25519); "
        "witness: cosignatures of audit checkpoints (Ed25519)"
    )
    algorithm: Literal["Ed25519", "X25519"]
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$", description="raw, base64url")]
    not_before: AwareDatetime
    not_after: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    revocation_reason: str | None = None

    def valid_at(self, moment: datetime) -> bool:
        """Inside the validity window (revocation is judged separately)."""
        return self.not_before <= moment and (self.not_after is None or moment < self.not_after)

    def revoked_by(self, moment: datetime) -> bool:
        """Revoked at or before ``moment``."""
        return self.revoked_at is not None and self.revoked_at <= moment

    def raw(self) -> bytes:
        return b64d(self.public_key, what="public_key")


#: open obligations one agency may hold on another at once when the policy names no figure
DEFAULT_OPEN_PER_PAIR = 200


class Policy(WireModel):
    """How the member agencies decide, itself changed only by their decision."""

    quorum_percent: Annotated[int, Field(ge=50, le=90)] = Field(
        default=50, description="a change needs more than this share of the voting agencies"
    )
    ack_within_hours: Annotated[int, Field(ge=1, le=720)] | None = Field(
        default=None, description="the clue acknowledgement deadline (absent: the bus's setting)"
    )
    witness_quorum: Annotated[int, Field(ge=1, le=16)] | None = Field(
        default=None,
        description="how many agencies' witnesses must cosign an audit checkpoint before auditors "
        "trust it (absent: cosignatures are reported, not required)",
    )
    open_per_pair: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None,
        description="how many obligations one agency may hold open on another at once (clues, "
        "rectifications, unanswered joint-check invitations): beyond it the router refuses "
        f"the next with too_many_open (absent: {DEFAULT_OPEN_PER_PAIR})",
    )
    produce_bytes_per_second: Annotated[int, Field(ge=1024, le=1 << 30)] | None = Field(
        default=None,
        description="Kafka quota of each agency's user: bytes per second into its outbox "
        "(absent: the bus's default)",
    )
    consume_bytes_per_second: Annotated[int, Field(ge=1024, le=1 << 30)] | None = Field(
        default=None,
        description="Kafka quota of each agency's user: bytes per second it fetches (absent: "
        "the bus's default)",
    )
    request_percentage: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None,
        description="Kafka quota of each agency's user: percent of one broker thread's time "
        "its requests may take (absent: the bus's default)",
    )

    @property
    def open_limit(self) -> int:
        """Open obligations allowed per sender → recipient pair (the policy's, else the bus's)."""
        return self.open_per_pair if self.open_per_pair is not None else DEFAULT_OPEN_PER_PAIR


class Registry(WireModel):
    """The versioned public registry every party verifies against."""

    _no_nulls = model_validator(mode="before")(refuse_nulls)

    version: Annotated[int, Field(ge=1)]
    issued_at: AwareDatetime
    members: tuple[Member, ...]
    keys: tuple[KeyRecord, ...]
    policy: Policy = Policy()
    previous: Annotated[
        str | None,
        Field(
            pattern=r"^[0-9a-f]{64}$",
            description="SHA-256 (hex) of the previous version's canonical JSON: the registry "
            "chain an auditor re-checks from the genesis version; absent in a genesis",
        ),
    ] = None
    chair: Annotated[
        str | None,
        Field(
            pattern=r"^[a-z]{2}-[a-z]{2,20}$",
            description="the agency chairing the joint meeting (轮值); it passes by the "
            "members' decision, a governance change (chair.passed)",
        ),
    ] = None

    @cached_property
    def _members(self) -> dict[str, Member]:
        return {m.id: m for m in self.members}

    @cached_property
    def _keys(self) -> dict[str, KeyRecord]:
        return {k.kid: k for k in self.keys}

    @cached_property
    def _ed25519(self) -> dict[str, Ed25519PublicKey]:
        return {k.kid: Ed25519PublicKey.from_public_bytes(k.raw()) for k in self.keys if k.purpose == "sign"}

    @cached_property
    def agency_ids(self) -> frozenset[str]:
        return frozenset(self.agencies)

    @cached_property
    def agencies(self) -> tuple[str, ...]:
        """The member agencies' ids in registry order: everything provisioned or counted per
        agency (topics, Kafka principals, ACLs, projection rows) follows this."""
        return tuple(m.id for m in self.members if m.kind == "agency")

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of this version's canonical JSON (RFC 8785): what the next version
        names as ``previous`` and what a governance proposal commits to."""
        return hashlib.sha256(canonical(self.model_dump(mode="json", exclude_none=True))).hexdigest()

    @cached_property
    def voters(self) -> tuple[str, ...]:
        """The agencies whose approval counts: members, not suspended."""
        return tuple(m.id for m in self.members if m.kind == "agency" and not m.suspended)

    @property
    def quorum(self) -> int:
        """Approvals a change needs: more than the policy's share of the voting agencies
        (by default a majority: 5 of 8)."""
        return len(self.voters) * self.policy.quorum_percent // 100 + 1

    def member(self, member_id: str) -> Member:
        """The member ``member_id``; ``unknown_sender`` if absent."""
        found = self._members.get(member_id)
        if found is None:
            raise rejection(Reason.UNKNOWN_SENDER, f"{member_id[:60]!r} is not a registered member")
        return found

    def is_agency(self, member_id: str) -> bool:
        m = self._members.get(member_id)
        return m is not None and m.kind == "agency"

    def key(self, kid: str) -> KeyRecord:
        """The key ``kid``; ``unknown_key`` if absent."""
        found = self._keys.get(kid)
        if found is None:
            raise rejection(Reason.UNKNOWN_KEY, f"key {kid[:60]!r} is not in registry v{self.version}")
        return found

    def verifier(self, kid: str) -> Ed25519PublicKey:
        """The Ed25519 public key object of a signing key (parsed once per registry)."""
        found = self._ed25519.get(kid)
        if found is None:
            self.key(kid)  # raises unknown_key
            raise rejection(Reason.UNKNOWN_KEY, f"{kid[:60]!r} is not a signing key")
        return found

    def witness_keys(self) -> dict[str, tuple[KeyRecord, ...]]:
        """The witness keys of each voting agency (cosignatures count per agency, by any of
        its witness keys not revoked; a key's window bounds when it may cosign)."""
        voters = set(self.voters)
        found: dict[str, tuple[KeyRecord, ...]] = {}
        for key in self.keys:
            if key.purpose == "witness" and key.owner in voters and key.revoked_at is None:
                found[key.owner] = (*found.get(key.owner, ()), key)
        return found

    def current_key(self, owner: str, purpose: Literal["sign", "seal", "witness"], at: datetime) -> KeyRecord:
        """The newest unrevoked key of ``owner`` for ``purpose`` valid at ``at``."""
        usable = [
            k
            for k in self.keys
            if k.owner == owner and k.purpose == purpose and k.valid_at(at) and not k.revoked_by(at)
        ]
        if not usable:
            raise rejection(Reason.UNKNOWN_KEY, f"{owner} has no valid {purpose} key at {at.isoformat()}")
        return max(usable, key=lambda k: k.not_before)

    def sealing_key(self, owner: str, at: datetime) -> tuple[str, X25519PublicKey]:
        """The key id and public key to seal for ``owner`` at time ``at``."""
        record = self.current_key(owner, "seal", at)
        return record.kid, X25519PublicKey.from_public_bytes(record.raw())
