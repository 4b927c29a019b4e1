"""The registry chain as others follow it: each new version with the signed governance
events that brought it into force, checked by replaying those events through the very rules
the router and auditors apply.

The router writes one :class:`RegistryVersion` per version to ``jointbus.registry``; an
agency's Subscriber and Publisher, starting from the registry they trust, accept a version
only if its evidence, verified under the version before, brings exactly it into force.

A proposal carried forward across self-revocations (wire-format §5.1) was made on an older
version: its record holds that version as ``base`` and, in its evidence, the
self-revocations since, in log order. The replay starts there and must end at the new
version, whose ``previous`` is the digest of the version before: the hash links bind the
base and every version between to the chain the reader already trusts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from pydantic import BaseModel, ConfigDict, Field

from jointbus.schemas.b64 import b64d, b64e
from jointbus.schemas.envelope import parse_envelope
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.ids import WireTime, parse_time
from jointbus.schemas.keys import Keyring
from jointbus.schemas.ledger import Ledger
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import OUTBOX_PREFIX
from jointbus.schemas.registry import Registry
from jointbus.schemas.wiremodel import WireModel

__all__ = [
    "Evidence",
    "GenesisSignatures",
    "OpenEvidence",
    "RegistryVersion",
    "check_genesis",
    "next_from_evidence",
    "sign_genesis",
]


class Evidence(BaseModel):
    """One signed governance event and the moment it arrived (the broker's append time of
    its outbox record, as the audit log holds it): rules such as revocation judge by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event: str = Field(max_length=400_000, description="the envelope's wire bytes, base64")
    received_at: WireTime


#: evidence items of one version at most: a proposal and its approvals, and the self-revocations
#: it was carried across (each revokes a live key, and only a majority adds keys)
MAX_EVIDENCE = 256


class RegistryVersion(WireModel):
    """One version of the registry and the signed events that brought it into force."""

    registry: Registry
    evidence: list[Evidence] = Field(min_length=1, max_length=MAX_EVIDENCE)
    base: Registry | None = Field(
        default=None,
        description="the version the evidence is replayed from when it is older than the version "
        "before: the one the deciding proposal was made on, carried forward across the "
        "self-revocations in the evidence (absent: the version before)",
    )

    @property
    def in_force_from(self) -> datetime:
        """When the deciding event arrived: the version decides what arrives after it."""
        return parse_time(self.evidence[-1].received_at)


def next_from_evidence(current: Registry, version: RegistryVersion) -> Registry:
    """``version.registry`` if its evidence, replayed by the governance rules at the times it
    arrived under ``current`` (or under ``version.base``, older, for a proposal carried
    forward), brings exactly that version into force; ``bad_transition`` otherwise (a forged
    version or base, a fork, a rollback, too few signatures, unreadable bytes)."""
    if version.registry.version != current.version + 1 or version.registry.previous != current.digest:
        raise ContractError(
            f"registry v{version.registry.version} does not follow v{current.version}",
            reason=Reason.BAD_TRANSITION,
        )
    start = current
    if version.base is not None:
        if version.base.version >= current.version:
            raise ContractError(
                f"the base of registry v{version.registry.version} is not older than v{current.version}",
                reason=Reason.BAD_TRANSITION,
            )
        # trusted only through the replay: it must end at version.registry, whose previous
        # is current's digest, so each version replayed from the base is one current links to
        start = version.base
    ledger, rules = Ledger(start), Rules()
    for offset, item in enumerate(version.evidence):
        try:
            wire = base64.b64decode(item.event, validate=True)
            env = parse_envelope(wire).envelope
        except (ValueError, ContractError):
            raise ContractError("unreadable evidence", reason=Reason.BAD_TRANSITION) from None
        topic = f"{OUTBOX_PREFIX}{env.sender}"
        arrived = parse_time(item.received_at)
        outcome = ledger.decide(wire, topic, 0, offset, arrived, ledger.registry, rules)
        if not outcome.decision.accepted:
            raise ContractError(
                f"evidence of registry v{version.registry.version}: {outcome.decision.detail}",
                reason=Reason.BAD_TRANSITION,
            )
        ledger.commit(outcome)
    if ledger.registry.digest != version.registry.digest:
        raise ContractError(
            f"the evidence does not bring registry v{version.registry.version} into force",
            reason=Reason.BAD_TRANSITION,
        )
    return ledger.registry


class OpenEvidence:
    """What a writer of the registry chain keeps between versions: per open proposal, the
    version it was made on and its signed events, and the self-revocations since (which
    carry it forward). Fed every accepted governance event in log order; answers the
    :class:`RegistryVersion` of each version brought into force."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[Registry, list[Evidence]]] = {}

    def __len__(self) -> int:
        return len(self.open)

    def add(
        self, under: Registry, key: str, item: Evidence, adopted: Registry | None, *, self_revocation: bool
    ) -> RegistryVersion | None:
        """Keep ``item``, an accepted governance event decided under ``under`` that belongs to
        proposal ``key`` (a proposal's own id, an approval's proposal, a self-revocation's
        id); when it brought ``adopted`` into force, that version with its evidence."""
        if self_revocation:
            assert adopted is not None, "a self-revocation always brings a version into force"
            for _, items in self.open.values():  # carried forward: the replay passes through it
                items.append(item)
            return RegistryVersion(registry=adopted, evidence=[item])
        base, items = self.open.setdefault(key, (under, []))
        items.append(item)
        if adopted is None:
            return None
        self.open.clear()  # a majority's version closes every other open proposal
        older = base if base.version < under.version else None
        return RegistryVersion(registry=adopted, evidence=items, base=older)


GENESIS_CONTEXT = b"jointbus registry genesis\n"


class GenesisSignatures(BaseModel):
    """The founding agencies' signatures over the genesis registry's digest: the chain's
    anchor is agreed by all of them, not written by whoever ran ``keys init``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    signatures: dict[str, str] = Field(description="agency → {kid, signature} as 'kid sig' (base64url)")


def sign_genesis(registry: Registry, rings: Mapping[str, Keyring]) -> GenesisSignatures:
    """Every founding agency signs the genesis digest with its signing key valid then."""
    signatures = {}
    for agency in registry.agencies:
        kid, key = rings[agency].signer(registry, registry.issued_at)
        signatures[agency] = f"{kid} {b64e(key.sign(GENESIS_CONTEXT + registry.digest.encode()))}"
    return GenesisSignatures(digest=registry.digest, signatures=signatures)


def check_genesis(registry: Registry, signed: GenesisSignatures) -> None:
    """Raise ``bad_signature`` unless every agency of the genesis registry signed its digest."""
    if signed.digest != registry.digest:
        raise ContractError("the genesis signatures are over another registry", reason=Reason.BAD_SIGNATURE)
    for agency in registry.agencies:
        entry = signed.signatures.get(agency)
        if entry is None or " " not in entry:
            raise ContractError(f"{agency} did not sign the genesis registry", reason=Reason.BAD_SIGNATURE)
        kid, signature = entry.split(" ", 1)
        key = registry.key(kid)
        if key.owner != agency or key.purpose != "sign":
            raise ContractError(f"{kid} is not a signing key of {agency}", reason=Reason.BAD_SIGNATURE)
        try:
            registry.verifier(kid).verify(
                b64d(signature, what="signature"), GENESIS_CONTEXT + signed.digest.encode()
            )
        except InvalidSignature:
            raise ContractError(
                f"{agency}'s genesis signature does not verify", reason=Reason.BAD_SIGNATURE
            ) from None
