"""The router's decisions, free of Kafka: verify, authorize, check the lifecycle, then say
what to deliver where and what to append to the audit log.

The faust agent in ``agents.worker`` feeds it records and writes the outputs; tests and
benchmarks drive it directly. Its memory is a ``schemas.ledger.Ledger`` rebuilt from the
audit log at start (``fold``), so the router and the auditors derive every decision from
the same history by the same rules.

Containment: nothing one record, aggregate or timer tick does can stop the router. A
failure while deciding becomes an audited ``internal_error`` rejection of that record; a
failure while checking an aggregate's deadlines quarantines that aggregate (its alerts
stop, an operator alert is logged and audited) and the scan goes on.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

import structlog

from jointbus.agents.dues import Dues
from jointbus.schemas.catalog import CATALOG
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import CLOUDEVENTS_CONTENT_TYPE, to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.governance import KeyRevokedByOwner, RegistryApproved
from jointbus.schemas.families.notice import AcceptanceNotice, ItemOverdue, RejectionNotice
from jointbus.schemas.family import Payload
from jointbus.schemas.ids import UUID_PATTERN, format_time, parse_time, uuid7_from
from jointbus.schemas.keys import Keyring
from jointbus.schemas.ledger import Ledger, Outcome
from jointbus.schemas.lifecycle import Rules, due_at, overdue_items
from jointbus.schemas.records import AuditRecord, event_fields, outbox_owner, parse_position, position_of
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.schemas.registry_chain import Evidence, OpenEvidence
from jointbus.streams.topics import AUDIT_TOPIC, REGISTRY_TOPIC, inbox

log = structlog.get_logger("jointbus.router")
HEADERS = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
_UUID = re.compile(UUID_PATTERN)
UNTRUSTED = "the record's time was set by its producer; outbox topics must use LogAppendTime"


@dataclass(frozen=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes
    value: bytes
    #: for a delivery: the registry version it was decided under, so the recipient's
    #: Subscriber verifies it under the same version (a later one may have revoked its key)
    registry_version: int | None = None


@dataclass
class Routed:
    """Everything one decision produces: the audit record and every output, audit last."""

    record: AuditRecord | None  # None: the log already holds this decision, nothing to write
    outputs: list[Output] = field(default_factory=list)
    #: a position the committed log already decided (re-read after a restart): skipped
    repeat: bool = False


class NewestVersion(dict[int, Output]):
    """The record of the newest registry version brought into force, and of no older one:
    kept for inspection only (it was committed with the decision that brought it into
    force, so nothing writes it again), and bounded to one entry."""

    def __setitem__(self, version: int, output: Output) -> None:
        self.clear()
        super().__setitem__(version, output)


class Router:
    """Decides each record of the outboxes and builds the events the router signs."""

    def __init__(self, registry: Registry, router_keys: Keyring, rules: Rules) -> None:
        if router_keys.owner != ROUTER:
            raise ValueError("the router signs with the svc-router keyring")
        self.keys = router_keys
        self.rules = rules
        self.ledger = Ledger(registry)
        self.dues = Dues()
        #: subjects alerted overdue whose deadline is still unmet (none of their events since)
        self.overdue_open: set[str] = set()
        self.alerted: set[str] = set()
        self.quarantined: dict[str, str] = {}
        #: the signed governance events of each open proposal, with the version it was made
        #: on and the self-revocations since: the evidence written with the version it brings
        self.evidence = OpenEvidence()
        #: the record of the newest registry version brought into force in this log (it went
        #: to ``jointbus.registry`` in the transaction of the decision that adopted it)
        self.versions: dict[int, Output] = NewestVersion()
        #: ``repeats``: records re-read after a restart whose position the log had decided
        self.counts = {"internal_error": 0, "quarantined": 0, "history_mismatch": 0, "repeats": 0}
        #: leaves the audit log holds (set by the rebuild): the index the next record takes
        self.leaves = 0

    @property
    def registry(self) -> Registry:
        """The registry version in force (governance changes it live, in log order)."""
        return self.ledger.registry

    # ------------------------------------------------------------------------ live routing
    def route(
        self,
        wire: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        *,
        appended: bool = True,
    ) -> Routed:
        """Decide one outbox record; a record whose position the log already decided (re-read
        after a restart: its consumer offset was not committed) is skipped, nothing written.

        ``timestamp_ms`` is the record's Kafka timestamp; ``appended`` says the broker set it
        (LogAppendTime). A time the producer chose cannot serve as the arrival time every
        time rule depends on, so such a record is refused (``untrusted_time``). Total: a
        null value, odd bytes or a failure anywhere still yield one audited decision.
        """
        position = position_of(topic, partition, offset)
        head = self.ledger.heads.get(f"{topic}:{partition}")
        if head is not None and offset <= head:
            return self._repeat(position)
        data = wire if isinstance(wire, bytes) else b""  # a null value (tombstone) decides too
        try:
            received = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
            if not appended:
                outcome = self.ledger.refused(topic, partition, offset, Reason.UNTRUSTED_TIME, UNTRUSTED)
            else:
                outcome = self.ledger.decide(
                    data, topic, partition, offset, received, self.registry, self.rules
                )
            routed = self._routed(data, topic, outcome, received)
        except Exception as exc:  # contained: one record never stops the router
            self.counts["internal_error"] += 1
            log.exception("decision failed", position=position, agency=outbox_owner(topic))
            outcome = self.ledger.refused(topic, partition, offset, Reason.INTERNAL, type(exc).__name__)
            routed = self._last_resort(data, topic, outcome, timestamp_ms)
        self.ledger.commit(outcome)
        routed = self._numbered(routed)
        self._track_due(outcome)
        return routed

    def _last_resort(self, wire: bytes, topic: str, outcome: Outcome, timestamp_ms: int) -> Routed:
        """The decision of a record whose handling failed: with a notice if it can be built,
        else the audit record alone, else a bare record that cannot fail."""
        try:
            received = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            received = datetime.now(UTC)
        for notify in (True, False):
            try:
                return self._routed(wire, topic, outcome, received, notify=notify)
            except Exception:  # try with less
                log.exception("internal_error record not built", position=outcome.position, notify=notify)
        record = AuditRecord(
            position=outcome.position,
            received_at=format_time(received),
            decision="rejected",
            reason=outcome.decision.reason,
            detail=outcome.decision.detail,
            sender=outbox_owner(topic),
            prev=outcome.prev,
            wire_sha256=hashlib.sha256(wire).hexdigest(),  # what was received, at least
            wire_size=len(wire),
        )
        return Routed(record, [_UNNUMBERED])

    def _routed(
        self, wire: bytes, topic: str, outcome: Outcome, received: datetime, *, notify: bool = True
    ) -> Routed:
        decision = outcome.decision
        owner = outbox_owner(topic)
        record = self._record(wire, owner, outcome, received)
        if decision.accepted:
            verified = outcome.verified
            assert verified is not None
            key = verified.envelope.subject.encode()
            version = outcome.registry_version
            outputs = [Output(inbox(r), key, wire, version) for r in decision.deliver_to]
            registry = self._governance(outcome, wire, format_time(received))
            answer = self._acceptance(record, owner, received) if notify and owner else None
            if answer is not None:  # the sender learns the decision and who has the event
                record = record.model_copy(update={"notice": answer})
                outputs.append(Output(inbox(str(owner)), answer["subject"].encode(), to_wire(answer)))
            return Routed(record, [*registry, *outputs, _UNNUMBERED])
        notice = None
        if notify and owner is not None and self.registry.is_agency(owner):
            notice = self._notice(record, owner, received)
        if notice is not None:
            record = record.model_copy(update={"notice": notice})
        log.info(
            "event rejected",
            event_id=record.event_id,
            agency=owner,
            reason=record.reason,
            position=record.position,
            detail=record.detail,
        )
        outputs = (
            [Output(inbox(owner), notice["subject"].encode(), to_wire(notice))] if notice and owner else []
        )
        return Routed(record, [*outputs, _UNNUMBERED])

    def _record(self, wire: bytes, owner: str | None, outcome: Outcome, received: datetime) -> AuditRecord:
        decision = outcome.decision
        fields = event_fields(
            wire, outcome.verified.raw if outcome.verified is not None else outcome.document
        )
        event = fields.get("event") or {}
        event_id = event.get("id")
        return AuditRecord(
            position=outcome.position,
            received_at=format_time(received),
            decision="accepted" if decision.accepted else "rejected",
            reason=decision.reason,
            detail=decision.detail[:1000],
            event_id=event_id if _is_uuid(event_id) else None,
            sender=owner,
            delivered_to=decision.deliver_to if decision.accepted else [],
            prev=outcome.prev,
            registry_version=outcome.registry_version,
            **fields,
        )

    def _notice(self, record: AuditRecord, owner: str, received: datetime) -> dict[str, Any] | None:
        """The signed rejection notice to the outbox's owner: only text the router chose
        or validated (a catalog type, a UUID, a reason code, an escaped bounded detail)."""
        payload = RejectionNotice(
            rejected_event_id=record.event_id or "",
            rejected_type=_catalog_type(record),
            reason=str(record.reason),
            detail=record.detail,
        )
        return self._signed_notice(record, owner, received, "rejection", payload)

    def _acceptance(self, record: AuditRecord, owner: str, received: datetime) -> dict[str, Any] | None:
        """The signed acceptance notice to the outbox's owner: which event, delivered to whom."""
        if not self.registry.is_agency(owner):
            return None
        payload = AcceptanceNotice(
            accepted_event_id=record.event_id or "",
            accepted_type=_catalog_type(record),
            delivered_to=record.delivered_to,
        )
        return self._signed_notice(record, owner, received, "acceptance", payload)

    def _signed_notice(
        self, record: AuditRecord, owner: str, received: datetime, family: str, payload: Payload
    ) -> dict[str, Any] | None:
        """A notice to the outbox's owner about the decision on ``record``, signed now."""
        notice_id = uuid7_from(received, f"notice|{record.position}".encode())
        correlation = (record.event or {}).get("correlationid")
        try:
            return compose(
                keyring=self.keys,
                registry=self.registry,
                event_type=family,
                subject=f"notice/{notice_id}",
                recipients=[owner],
                payload=payload,
                correlationid=correlation if _is_uuid(correlation) else notice_id,
                causationid=record.event_id,
                now=received,
                event_id=notice_id,
            )
        except ContractError as exc:  # e.g. no router key valid at that moment: logged, not fatal
            log.error("notice not signed", position=record.position, family=family, reason=exc.reason)
            return None

    def _repeat(self, position: str) -> Routed:
        """A record the committed log already decided. Its outputs were committed in the
        same transaction as its audit record, so none is written again (a copy would reach
        readers twice) and nothing of it need be remembered."""
        self.counts["repeats"] += 1
        log.debug("already decided in the audit log; skipped", position=position)
        return Routed(None, [], repeat=True)

    def _track_due(self, outcome: Outcome) -> None:
        if outcome.verified is None or outcome.state is None:
            return
        subject = outcome.verified.envelope.subject
        due = due_at(outcome.state)
        if due is None or due > parse_time(outcome.verified.envelope.time):
            self.overdue_open.discard(subject)  # met, or given a new deadline
        if due is None or subject in self.quarantined:
            self.dues.discard(subject)
        else:
            self.dues.set(subject, due)

    # ----------------------------------------------------------------- rebuilt from history
    def fold(self, record: AuditRecord) -> None:
        """Take one audit-log leaf (in log order) into the router's memory at start."""
        if record.decision == "emitted":
            self.alerted.add(record.position)
            return
        if record.decision == "quarantined":
            subject = record.position.removeprefix("quarantine:")
            self.quarantined[subject] = record.detail
            self.dues.discard(subject)
            return
        if parse_position(record.position) is None:
            return
        try:
            outcome = self.ledger.rederive(record, self.registry, self.rules)
        except ContractError:
            outcome = None
        logged = (record.decision == "accepted", record.reason)
        if outcome is None or (outcome.decision.accepted, outcome.decision.reason) != logged:
            self.counts["history_mismatch"] += 1
            log.error("the audit log disagrees with the rules", position=record.position)
            where = parse_position(record.position)
            assert where is not None
            outcome = self.ledger.refused(*where, Reason.INTERNAL, "history mismatch")
        self._governance(outcome, record.wire() or b"", record.received_at)
        self.ledger.commit(outcome)
        self._track_due(outcome)

    # --------------------------------------------------------------------------- governance
    def _governance(self, outcome: Outcome, wire: bytes, received: str) -> list[Output]:
        """Keep the evidence of open proposals; when a decision brings a registry version
        into force, the record of it for ``jointbus.registry`` (before the deliveries)."""
        verified = outcome.verified
        if (
            verified is None
            or not outcome.decision.accepted
            or not verified.spec.family.startswith("governance.")
        ):
            return []
        env, payload = verified.envelope, verified.payload
        proposal = payload.proposal_id if isinstance(payload, RegistryApproved) else env.id
        item = Evidence(event=base64.b64encode(wire).decode(), received_at=received)
        adopted = outcome.decision.registry
        own = isinstance(payload, KeyRevokedByOwner)  # carries the open proposals forward
        version = self.evidence.add(self.registry, proposal, item, adopted, self_revocation=own)
        if adopted is None or version is None:
            return []
        log.info("registry version in force", version=adopted.version, event_id=env.id)
        output = Output(REGISTRY_TOPIC, str(adopted.version).encode(), version.model_dump_json().encode())
        self.versions[adopted.version] = output
        return [output]

    # ---------------------------------------------------------------------------- deadlines
    def overdue(self, now: datetime) -> list[Routed]:
        """Signed alerts for every deadline passed by ``now`` and not yet alerted."""
        routed: list[Routed] = []
        for subject, _ in self.dues.passed(now):
            try:
                routed += self._alerts(subject, now)
                self.dues.discard(subject)
                self.overdue_open.add(subject)
            except Exception as exc:  # contained: quarantine this aggregate, scan the rest
                routed.append(self._quarantine(subject, now, exc))
        return [self._numbered(r) for r in routed]

    def _numbered(self, routed: Routed) -> Routed:
        """``routed`` with its audit record stamped with the leaf index it takes (its
        position is new: a repeat writes nothing)."""
        if routed.record is None:
            return routed
        record = routed.record.model_copy(update={"leaf": self.leaves})
        self.leaves += 1
        assert routed.outputs[-1].topic == AUDIT_TOPIC  # the audit record is always last
        return Routed(record, [*routed.outputs[:-1], _audit(record)], routed.repeat)

    def _alerts(self, subject: str, now: datetime) -> list[Routed]:
        state = self.ledger.aggregate(subject)
        if state is None:
            return []
        routed = []
        for item in overdue_items(state, now):
            position = f"deadline:{subject}:{item.what}:{item.deadline.isoformat()}"
            if position in self.alerted:
                continue
            alert_id = uuid7_from(now, position.encode())
            alert = compose(  # signed now, with a key valid now; the deadline is in the payload
                keyring=self.keys,
                registry=self.registry,
                event_type="deadline.overdue",
                subject=subject,
                recipients=list(item.parties),
                payload=ItemOverdue(
                    aggregate=subject,
                    what=item.what,
                    deadline=item.deadline,
                    responsible=item.responsible,
                ),
                now=now,
                event_id=alert_id,
            )
            record = AuditRecord(
                position=position,
                received_at=format_time(now),
                decision="emitted",
                event_id=alert_id,
                sender=ROUTER,
                event=alert,
                delivered_to=list(item.parties),
            )
            self.alerted.add(position)
            log.info("deadline passed", aggregate=subject, event_id=alert_id, what=item.what)
            routed.append(Routed(record, outputs_of(record)))
        return routed

    def _quarantine(self, subject: str, now: datetime, exc: Exception) -> Routed:
        detail = f"deadline check failed: {type(exc).__name__}: {str(exc)[:300]}"
        self.dues.discard(subject)
        self.quarantined[subject] = detail
        self.counts["quarantined"] += 1
        log.error("aggregate quarantined; its alerts are suspended", aggregate=subject, detail=detail)
        record = AuditRecord(
            position=f"quarantine:{subject}",
            received_at=format_time(now),
            decision="quarantined",
            reason="internal_error",
            detail=detail,
        )
        return Routed(record, [_UNNUMBERED])


def outputs_of(record: AuditRecord) -> list[Output]:
    """Every record a logged decision produces, the audit record last (deterministic)."""
    outputs: list[Output] = []
    event = record.event or {}
    if record.decision in ("accepted", "emitted") and record.delivered_to:
        wire = record.wire()
        assert wire is not None
        key = str(event.get("subject", "")).encode()
        outputs = [Output(inbox(r), key, wire, record.registry_version) for r in record.delivered_to]
    if record.notice is not None and record.sender is not None:
        outputs.append(
            Output(inbox(record.sender), str(record.notice["subject"]).encode(), to_wire(record.notice))
        )
    return [*outputs, _audit(record)]


#: where a new decision's audit record goes once it has its leaf index (``Router._numbered``)
_UNNUMBERED = Output(AUDIT_TOPIC, b"", b"")


def _audit(record: AuditRecord) -> Output:
    return Output(AUDIT_TOPIC, record.position.encode(), record.to_bytes())


def _catalog_type(record: AuditRecord) -> str:
    """The event type ``record`` names when it is one of the catalog's, else "" (the bytes
    may hold any JSON value there)."""
    event_type = (record.event or {}).get("type")
    return event_type if isinstance(event_type, str) and event_type in CATALOG else ""


def _is_uuid(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(_UUID.match(value))
