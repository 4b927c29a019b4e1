"""The lifecycle rules, as pure functions (aggregate + event → decision, next aggregate).

The router applies them live; auditors apply the very same functions on replay. Each kind's
own transitions live in its module (``schemas/families/``); this module dispatches to them,
keeps the bookkeeping every aggregate shares (the accepted events receipts refer to) and
checks receipts. Whether a Kafka record was decided before, and whether an event id was used
before anywhere on the bus, is the ledger's business (``schemas.ledger``).

The chair of the joint meeting is the registry's: it passes by a governance change, and only
the current chair records a meeting or a mechanism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from jointbus.schemas.catalog import family_of, kind_named, kind_of
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.receipt import Receipt
from jointbus.schemas.family import (
    Accepted,
    Aggregate,
    Context,
    Deadline,
    Payload,
    evolve,
    refuse,
)
from jointbus.schemas.registry import Registry

__all__ = [
    "Aggregate",
    "Deadline",
    "Decision",
    "Rules",
    "due_at",
    "dump_aggregate",
    "load_aggregate",
    "overdue_items",
]


@dataclass
class Decision:
    """The router's verdict on one event."""

    accepted: bool
    reason: str | None = None
    detail: str = ""
    deliver_to: list[str] = field(default_factory=list)
    #: the registry version this decision brings into force (an adopted governance change)
    registry: Registry | None = None


class Rules:
    """Lifecycle rules; ``ack_within`` is the bus's acknowledgement deadline for clues."""

    def __init__(self, ack_within: timedelta = timedelta(days=3)) -> None:
        self.ack_within = ack_within

    def decide(
        self,
        aggregate: Aggregate | None,
        env: Envelope,
        family: str,
        payload: Payload | None,
        *,
        registry: Registry,
        lookup: Callable[[str], Aggregate | None],
        received: datetime | None = None,
    ) -> tuple[Aggregate | None, Decision]:
        """Apply one verified event to its aggregate.

        Returns the next aggregate (None when the event was refused) and the decision.
        ``lookup`` reads another aggregate (the chair chain), ``registry`` is the one the
        event was verified against.
        """
        current = aggregate or Aggregate(env.subject)
        try:
            if family == "receipt":
                if not isinstance(payload, Receipt):
                    refuse(Reason.SCHEMA, "a receipt's payload is not readable")
                after = _receipt(current, env, payload)
            else:
                hours = registry.policy.ack_within_hours  # the agencies' policy, else the bus's
                ack_within = timedelta(hours=hours) if hours is not None else self.ack_within
                ctx = Context(registry, lookup, ack_within, received)
                after, adopted = self._transition(current, env, family, payload, ctx)
                return after, Decision(True, deliver_to=list(env.recipients), registry=adopted)
        except ContractError as refusal:
            return None, Decision(False, refusal.reason, refusal.message)
        return after, Decision(True, deliver_to=list(env.recipients))

    def _transition(
        self, current: Aggregate, env: Envelope, family: str, payload: Payload | None, ctx: Context
    ) -> tuple[Aggregate, Registry | None]:
        """The aggregate after the kind's transition, and the registry version it brings
        into force, if any (governance)."""
        kind = kind_of(family)
        if kind is None:
            refuse(Reason.NOT_AUTHORIZED, f"{family} is not in the catalog")
        transition = kind.transitions.get(family)
        if transition is None:
            refuse(Reason.NOT_AUTHORIZED, f"{family} is published by the router only")
        if env.subject.split("/", 1)[0] != kind.name:  # no kind may squat another's subject
            refuse(
                Reason.BAD_TRANSITION,
                f"a {family} event belongs on a {kind.name}/… subject, not {env.subject}",
            )
        state = current.state
        if state is not None and state.kind != kind.name:
            refuse(Reason.BAD_TRANSITION, f"{env.subject} holds a {state.kind}, not a {kind.name}")
        after = transition(state, env, payload, ctx)
        accepted = Accepted(env.id, env.sender, env.type, tuple(env.recipients))
        adopted = kind.registry_change(after, env, ctx) if kind.registry_change is not None else None
        return replace(current, state=after).with_accepted(accepted), adopted


def _receipt(current: Aggregate, env: Envelope, receipt: Receipt) -> Aggregate:
    """A receipt answers an accepted event of the same aggregate, from one of its recipients
    to its sender; a refusal may move the item out of its open figures (its kind says how)."""
    original = current.find(receipt.event_id)
    if original is None:
        refuse(Reason.BAD_TRANSITION, f"no accepted event {receipt.event_id} in {env.subject}")
    if env.sender not in original.recipients:
        refuse(Reason.NOT_AUTHORIZED, f"{env.sender} did not receive {receipt.event_id}")
    if env.recipients != [original.sender]:
        refuse(Reason.NOT_AUTHORIZED, f"a receipt goes to {original.sender} only")
    if receipt.event_type != original.type:
        refuse(Reason.BAD_TRANSITION, f"{receipt.event_id} is a {original.type}, not a {receipt.event_type}")
    if receipt.status != "refused":
        return current
    if env.sender in original.refused_by:
        refuse(Reason.BAD_TRANSITION, f"{env.sender} already refused {receipt.event_id}")
    after = current.with_accepted(replace(original, refused_by=(*original.refused_by, env.sender)))
    state = current.state
    kind = kind_named(state.kind) if state is not None else None
    if state is not None and kind is not None:
        moved = kind.after_refusal(family_of(original.type), state.status)
        if moved is not None:
            after = replace(after, state=evolve(state, status=moved))
    return after


def dump_aggregate(aggregate: Aggregate) -> dict[str, Any]:
    """The JSON form of an aggregate (for stores that spill to disk)."""
    return {
        "subject": aggregate.subject,
        "state": aggregate.state.model_dump(mode="json") if aggregate.state is not None else None,
        "accepted": [
            [a.id, a.sender, a.type, list(a.recipients), list(a.refused_by)] for a in aggregate.accepted
        ],
    }


def load_aggregate(data: dict[str, Any]) -> Aggregate:
    """An aggregate from :func:`dump_aggregate`'s form, its state as its kind's model."""
    state = None
    if data["state"] is not None:
        kind = kind_named(str(data["state"]["kind"]))
        if kind is None or kind.state is None:
            raise ContractError(
                f"a stored aggregate of unknown kind {data['state']['kind']!r}", reason=Reason.SCHEMA
            )
        state = kind.state.model_validate(data["state"])
    accepted = tuple(Accepted(i, s, t, tuple(r), tuple(f)) for i, s, t, r, f in data["accepted"])
    return Aggregate(str(data["subject"]), state, accepted)


def _deadline(aggregate: Aggregate) -> Deadline | None:
    state = aggregate.state
    kind = kind_named(state.kind) if state is not None else None
    if state is None or kind is None or kind.deadline is None:
        return None
    return kind.deadline(state)


def due_at(aggregate: Aggregate) -> datetime | None:
    """The moment this aggregate's next deadline passes, if one is still to be met."""
    deadline = _deadline(aggregate)
    return deadline.due if deadline is not None else None


def overdue_items(aggregate: Aggregate, now: datetime) -> list[Deadline]:
    """The deadlines of this aggregate that have passed by ``now`` and are still unmet."""
    deadline = _deadline(aggregate)
    return [deadline] if deadline is not None and now >= deadline.due else []
