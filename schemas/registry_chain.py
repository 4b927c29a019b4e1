"""The registry chain as others follow it: each new version with the signed governance
events that brought it into force, checked by replaying those events through the very rules
the router and auditors apply.

The router writes one :class:`RegistryVersion` per version to ``jointbus.registry``; an
agency's Subscriber and Publisher, starting from the registry they trust, accept a version
only if its evidence, verified under the version before, brings exactly it into force.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, Field

from jointbus.schemas.envelope import parse_envelope
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.ids import parse_time
from jointbus.schemas.ledger import Ledger
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import OUTBOX_PREFIX
from jointbus.schemas.registry import Registry

__all__ = ["RegistryVersion", "next_from_evidence"]


class RegistryVersion(BaseModel):
    """One version of the registry and the signed events that brought it into force."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registry: Registry
    evidence: list[str] = Field(min_length=1, max_length=64, description="envelopes, base64")

    def wires(self) -> list[bytes]:
        return [base64.b64decode(e) for e in self.evidence]


def next_from_evidence(current: Registry, version: RegistryVersion) -> Registry:
    """``version.registry`` if its evidence, replayed under ``current`` by the governance
    rules, brings exactly that version into force; ``bad_transition`` otherwise (a forged
    version, a fork, a rollback, too few signatures)."""
    if version.registry.version != current.version + 1 or version.registry.previous != current.digest:
        raise ContractError(
            f"registry v{version.registry.version} does not follow v{current.version}",
            reason=Reason.BAD_TRANSITION,
        )
    ledger, rules = Ledger(current), Rules()
    for offset, wire in enumerate(version.wires()):
        env = parse_envelope(wire).envelope
        outcome = ledger.decide(
            wire, f"{OUTBOX_PREFIX}{env.sender}", 0, offset, parse_time(env.time), ledger.registry, rules
        )
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
