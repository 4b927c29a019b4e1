"""Judging one inbox record, apart from Kafka (in the manner of python-tuf's trusted
metadata set): the bytes, the record's time and the registry version it names in; an
``Accepted`` delivery, a ``Duplicate`` or a ``Refused`` value out, never an exception for
what the record holds. The Subscriber does the I/O around it (fetching, following the
registry, sending the refusal receipt, committing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointbus.schemas.catalog import Payload
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.ids import parse_time
from jointbus.schemas.opening import open_payload
from jointbus.schemas.registry import Registry
from jointbus.schemas.verify import MAX_CLOCK_SKEW, VerifiedEvent, verify_event

#: refusals a newer registry version may lift (a new key or member, changed rights)
STALE_REASONS = frozenset(
    {"unknown_key", "unknown_sender", "not_authorized", "unknown_recipient", "key_expired"}
)


class Seen(Protocol):
    """The ids already handed to the application (a set, or the Subscriber's store)."""

    def __contains__(self, event_id: str, /) -> bool: ...


@dataclass(frozen=True)
class Delivery:
    """An event delivered to this agency, verified end to end and opened."""

    envelope: Envelope
    payload: Payload
    verified: VerifiedEvent
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def family(self) -> str:
        return self.verified.spec.family


@dataclass(frozen=True)
class Accepted:
    """The record is an event for this agency, verified and opened: hand it over."""

    delivery: Delivery


@dataclass(frozen=True)
class Duplicate:
    """An event already handed to the application (by id): skipped, not refused."""

    event_id: str


@dataclass(frozen=True)
class Refused:
    """The record is not accepted, with its reason code.

    ``answer`` is set when the event is authentic, addressed to this agency, of a family
    answered by receipts and not handled before: it gets a signed refusal receipt, so the
    sender and the router learn it was never seen. ``stale``: a registry version not seen
    here yet may lift the refusal (judge again after following the registry).
    """

    reason: str
    detail: str
    event_id: str = ""
    answer: VerifiedEvent | None = None
    stale: bool = False
    partition: int = 0
    offset: int = 0

    def describe(self) -> str:
        """One readable line: which record, its reason code and why."""
        which = f"event {self.event_id}" if self.event_id else "a record"
        where = f"partition {self.partition}, offset {self.offset}"
        return f"{which} ({where}) refused: {self.reason}: {self.detail}"


Judgement = Accepted | Duplicate | Refused


@dataclass
class InboxJudge:
    """Decides inbox records for ``agency`` holding ``openers`` (its sealing keys by kid),
    under the registry versions it knows."""

    agency: str
    openers: Mapping[str, X25519PrivateKey]
    registry: Registry
    #: every registry version known here, by number (deliveries name theirs)
    versions: dict[int, Registry] = field(default_factory=dict)
    #: when each followed version came into force
    in_force_from: dict[int, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.versions.setdefault(self.registry.version, self.registry)

    def adopt(self, chain: list[tuple[Registry, datetime]]) -> None:
        """Know the versions of ``chain`` (oldest first); the last is the one in force."""
        self.versions.update({r.version: r for r, _ in chain})
        self.in_force_from.update({r.version: since for r, since in chain})
        if chain:
            self.registry = chain[-1][0]

    def judge(
        self,
        wire: bytes,
        timestamp_ms: int,
        *,
        version: int | None = None,
        partition: int = 0,
        offset: int = 0,
        seen: Seen = frozenset(),
    ) -> Judgement:
        """Decide one record (``seen``: the ids already handed to the application)."""
        verified: VerifiedEvent | None = None
        try:
            verified = self._verified(wire, timestamp_ms, version)
            env = verified.envelope
            if self.agency not in env.recipients:
                raise rejection(
                    Reason.NOT_A_RECIPIENT, f"{env.id} is addressed to {', '.join(env.recipients)}"
                )
            if env.id in seen:
                return Duplicate(env.id)
            payload = verified.payload
            if payload is None:
                payload = open_payload(env, self.agency, self.openers).payload
        except ContractError as exc:
            answer = None
            if verified is not None and self._answered(verified, seen):
                answer = verified
            return Refused(
                str(exc.reason),
                exc.message,
                event_id=verified.id if verified is not None else "",
                answer=answer,
                stale=exc.reason in STALE_REASONS,
                partition=partition,
                offset=offset,
            )
        return Accepted(Delivery(verified.envelope, payload, verified, partition, offset))

    def _answered(self, verified: VerifiedEvent, seen: Seen) -> bool:
        """An authentic event of ours, answered by receipts, not handled before."""
        env = verified.envelope
        return self.agency in env.recipients and verified.spec.answered and env.id not in seen

    def _verified(self, wire: bytes, timestamp_ms: int, version: int | None) -> VerifiedEvent:
        """Verify under the registry version the router decided the event under (a later
        version may have revoked the key it was rightly signed with), else the newest."""
        received = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        registry = self.versions.get(version, self.registry) if version is not None else self.registry
        verified = verify_event(wire, registry, received_at=received, check_skew=False)
        superseded = self.in_force_from.get(registry.version + 1)
        if superseded is not None and parse_time(verified.envelope.time) > superseded + MAX_CLOCK_SKEW:
            # named an older version than the one in force when it was signed: a relabelled
            # delivery (a key revoked or a member suspended since) is judged by the newer one
            raise rejection(Reason.KEY_REVOKED, f"signed after registry v{registry.version} was superseded")
        return verified
