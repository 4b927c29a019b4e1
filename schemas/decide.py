"""The whole decision on one outbox record — verify, check the outbox, apply the lifecycle —
as one pure function, shared by the live router and by auditors re-deriving its decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from schemas.envelope import ParsedEnvelope
from schemas.errors import ContractError, Reason
from schemas.lifecycle import Decision, Rules, State
from schemas.registry import Registry
from schemas.verify import VerifiedEvent, verify_event, verify_parsed

OUTBOX_PREFIX = "jointbus.outbox."


@dataclass
class Outcome:
    """A decision, the verified event (if it verified) and the aggregate's new state."""

    decision: Decision
    verified: VerifiedEvent | None = None
    state: State | None = None


def decide_record(
    wire: bytes | ParsedEnvelope,
    topic: str,
    position: str,
    received: datetime,
    registry: Registry,
    rules: Rules,
    state_of: Callable[[str], State | None],
) -> Outcome:
    """Decide the record at ``position`` of outbox ``topic``, received at ``received``.

    Deterministic: the same record, registry and prior state give the same outcome, which
    is what lets at-least-once processing be idempotent and auditors re-check every verdict.
    """
    try:
        if isinstance(wire, ParsedEnvelope):
            verified = verify_parsed(wire, registry, received_at=received)
        else:
            verified = verify_event(wire, registry, received_at=received)
        if verified.envelope.sender != topic.removeprefix(OUTBOX_PREFIX):
            raise ContractError(
                f"{verified.envelope.sender} events come through its own outbox, not {topic}",
                reason=Reason.NOT_AUTHORIZED,
            )
    except ContractError as exc:
        return Outcome(Decision(False, exc.reason, exc.message))
    env = verified.envelope
    state, decision = rules.decide(
        state_of(env.subject), env, verified.spec.family, verified.payload, position
    )
    return Outcome(decision, verified, state)
