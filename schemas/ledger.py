"""The ledger: everything the bus remembers between decisions, and the one way a decision
changes it.

- every aggregate's lifecycle state (by subject),
- the event ids used on the whole bus within ``ID_WINDOW`` (an id is unique whatever its
  subject: the same signed event cannot be decided twice, not even on another aggregate),
- for each outbox partition, the offset of the last record decided (``heads``): a decision
  names its predecessor (``prev``), so a decision missing from the audit log leaves a hole
  an auditor can point at;
- how many obligations each agency holds open on each other (``open``, by sender →
  recipient pair, from the aggregates' states as their kinds declare them): an event that
  would open one more than the policy's ``open_per_pair`` is refused (``too_many_open``), so
  a flood cannot charge its recipient with anything. Incremental, one integer per pair.

The router keeps one ledger live and rebuilds it from the audit log when it starts;
auditors rebuild one the same way while re-deriving every decision. Both call
``decide`` then ``commit``, so router and auditors cannot drift apart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jointbus.schemas.catalog import kind_named
from jointbus.schemas.envelope import ParsedEnvelope, envelope_of, parse_wire, to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.family import AggregateState
from jointbus.schemas.ids import parse_time
from jointbus.schemas.lifecycle import Aggregate, Decision, Rules
from jointbus.schemas.records import AuditRecord, outbox_owner, parse_position
from jointbus.schemas.registry import Registry
from jointbus.schemas.verify import ID_WINDOW, VerifiedEvent, verify_parsed

#: how long ids are remembered: the window events must fall in, plus as much again for
#: partitions the router reads later than others (their arrival times interleave)
ID_MEMORY = 2 * ID_WINDOW

Pair = tuple[str, str]


def obligations_of(state: AggregateState | None) -> tuple[Pair, ...]:
    """The (opened by, owed by) agency pairs ``state`` holds open, as its kind declares
    (none for kinds that open no obligation)."""
    kind = kind_named(state.kind) if state is not None else None
    if state is None or kind is None or kind.obligations is None:
        return ()
    return kind.obligations(state)


@dataclass
class Outcome:
    """A decision about one outbox record, what was learned, and where it sits."""

    decision: Decision
    stream: str
    offset: int
    prev: int | None
    verified: VerifiedEvent | None = None
    state: Aggregate | None = None
    #: the registry version the decision was made under
    registry_version: int | None = None
    #: the record's bytes as a strictly parsed JSON object, when they are one (parsed once:
    #: the audit record keeps this object whether or not the event passed)
    document: dict[str, Any] | None = None
    #: obligations the decision opens and closes (sender → recipient pairs)
    opens: tuple[Pair, ...] = ()
    closes: tuple[Pair, ...] = ()

    @property
    def position(self) -> str:
        return f"{self.stream}:{self.offset}"


class Ledger:
    """Aggregates, recent event ids and outbox heads; ``aggregates`` may be any mapping (a
    dict live, a spilling store for auditors of long logs)."""

    def __init__(self, registry: Registry, aggregates: MutableMapping[str, Aggregate] | None = None) -> None:
        #: the registry version in force: the one the log started with, then each version
        #: an accepted governance change brought into force, in log order
        self.registry = registry
        #: the digest of every registry version this ledger has had in force
        self.versions: dict[int, str] = {registry.version: registry.digest}
        self.aggregates: MutableMapping[str, Aggregate] = aggregates if aggregates is not None else {}
        self.ids: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self.heads: dict[str, int] = {}
        #: obligations open per (opened by, owed by) pair; a pair with none is absent
        self.open: dict[Pair, int] = {}

    def aggregate(self, subject: str) -> Aggregate | None:
        return self.aggregates.get(subject)

    def decide(
        self,
        wire: bytes | ParsedEnvelope,
        topic: str,
        partition: int,
        offset: int,
        received: datetime,
        registry: Registry,
        rules: Rules,
    ) -> Outcome:
        """Decide the record at (topic, partition, offset), received at ``received``.

        Deterministic: the same record, registry and ledger give the same outcome, which
        is what lets auditors re-check every verdict. Changes nothing until ``commit``.
        """
        stream = f"{topic}:{partition}"
        outcome = Outcome(
            Decision(False), stream, offset, self.heads.get(stream), registry_version=registry.version
        )
        try:
            if isinstance(wire, ParsedEnvelope):
                parsed = wire
            else:
                value, plain = parse_wire(wire)
                if isinstance(value, dict):
                    outcome.document = value
                parsed = envelope_of(value, plain)
            verified = verify_parsed(parsed, registry, received_at=received)
            env = verified.envelope
            if env.sender != outbox_owner(topic):
                raise ContractError(
                    f"{env.sender} events come through its own outbox, not {topic}",
                    reason=Reason.NOT_AUTHORIZED,
                )
            seen = self.ids.get(env.id)
            if seen is not None:
                raise ContractError(
                    f"event {env.id} was already decided at {seen[0]}", reason=Reason.DUPLICATE
                )
        except ContractError as exc:
            outcome.decision = Decision(False, exc.reason, exc.message)
            return outcome
        outcome.verified = verified
        before = self.aggregate(env.subject)
        outcome.state, outcome.decision = rules.decide(
            before,
            env,
            verified.spec.family,
            verified.payload,
            registry=registry,
            lookup=self.aggregate,
            received=received,
        )
        if outcome.state is not None:
            self._bound_open(outcome, before, registry)
        return outcome

    def _bound_open(self, outcome: Outcome, before: Aggregate | None, registry: Registry) -> None:
        """Note the obligations an accepted event opens and closes; refuse it
        (``too_many_open``) when one of those it opens would pass the policy's limit for its
        pair. Nothing changes until ``commit``."""
        was = obligations_of(before.state if before is not None else None)
        now = obligations_of(outcome.state.state if outcome.state is not None else None)
        opens = tuple(p for p in now if p not in was)
        limit = registry.policy.open_limit
        for sender, recipient in opens:
            held = self.open.get((sender, recipient), 0)
            if held >= limit:
                outcome.state = None
                outcome.decision = Decision(
                    False,
                    Reason.TOO_MANY_OPEN,
                    f"{sender} already holds {held} obligations open on {recipient}, the "
                    f"most the policy allows ({limit}); {recipient} must answer some first",
                )
                return
        outcome.opens = opens
        outcome.closes = tuple(p for p in was if p not in now)

    def commit(self, outcome: Outcome) -> None:
        """Make a decision part of history: the head moves, the id is taken, state changes."""
        self.heads[outcome.stream] = max(outcome.offset, self.heads.get(outcome.stream, -1))
        verified = outcome.verified
        if verified is None:
            return
        env = verified.envelope
        self.remember_id(env.id, outcome.position, parse_time(env.time))
        if outcome.state is not None:
            self.aggregates[env.subject] = outcome.state
            for pair in outcome.opens:
                self.open[pair] = self.open.get(pair, 0) + 1
            for pair in outcome.closes:
                left = self.open.get(pair, 0) - 1
                if left > 0:
                    self.open[pair] = left
                else:
                    self.open.pop(pair, None)
        if outcome.decision.registry is not None:
            self.registry = outcome.decision.registry
            self.versions[self.registry.version] = self.registry.digest

    def remember_id(self, event_id: str, position: str, moment: datetime) -> None:
        """Take ``event_id``; ids older than ``ID_MEMORY`` before ``moment`` are forgotten
        (no event that old passes the clock check any more, even from a lagging partition)."""
        self.ids[event_id] = (position, moment)
        cutoff = moment - ID_MEMORY
        while self.ids:
            oldest = next(iter(self.ids.values()))
            if oldest[1] >= cutoff:
                break
            self.ids.popitem(last=False)

    def rederive(
        self, record: AuditRecord, registry: Registry, rules: Rules, *, plain: bool = False
    ) -> Outcome:
        """The outcome the rules give, now, for the outbox decision logged in ``record``
        (not committed). ``plain``: the record's bytes are known free of astral characters
        (see ``schemas.canonical``). Records the rules cannot re-derive — an oversized event kept as a
        digest, an internal error, an untrusted time — keep their logged decision and change
        only the head.
        """
        where = parse_position(record.position)
        if where is None:
            raise ContractError(f"{record.position[:80]!r} is not an outbox position", reason=Reason.SCHEMA)
        topic, partition, offset = where
        stream = where.stream
        if record.wire_sha256 is not None or record.reason in (Reason.INTERNAL, Reason.UNTRUSTED_TIME):
            logged = Decision(False, record.reason, record.detail)
            return Outcome(logged, stream, offset, self.heads.get(stream), registry_version=registry.version)
        source: bytes | ParsedEnvelope
        if record.event is not None:  # parsed once already: skip re-serializing
            try:
                source = envelope_of(record.event, plain=plain)
            except ContractError:
                source = to_wire(record.event)
        else:
            wire = record.wire()
            if wire is None:
                raise ContractError("the record keeps no event", reason=Reason.SCHEMA)
            source = wire
        return self.decide(source, topic, partition, offset, parse_time(record.received_at), registry, rules)

    def refused(self, topic: str, partition: int, offset: int, reason: Reason, detail: str) -> Outcome:
        """A rejection the rules did not derive (nothing remembered but the head, so the
        sender may try again with a new event): ``internal_error`` when deciding failed,
        ``untrusted_time`` when the producer chose the record's Kafka timestamp."""
        stream = f"{topic}:{partition}"
        refusal = Decision(False, reason.value, detail[:1000])
        return Outcome(
            refusal, stream, offset, self.heads.get(stream), registry_version=self.registry.version
        )
