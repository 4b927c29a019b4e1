"""The router's decisions, free of Kafka: verify, authorize, check the lifecycle, then say
what to deliver where and what to append to the audit log.

The faust agent in ``agents.worker`` feeds it records and performs the outputs; tests and
the auditors' replay can drive it directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

import structlog

from schemas.catalog import ItemOverdue, RejectionNotice
from schemas.compose import compose
from schemas.decide import decide_record
from schemas.envelope import CLOUDEVENTS_CONTENT_TYPE, to_wire
from schemas.ids import UUID_PATTERN, format_time, uuid7_from
from schemas.keys import Keyring
from schemas.lifecycle import Decision, Rules, State, overdue_items
from schemas.records import AuditRecord, event_fields, position_of
from schemas.registry import ROUTER, Registry
from streams.topics import AUDIT_TOPIC, inbox

log = structlog.get_logger("jointbus.router")
HEADERS = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
_UUID = re.compile(UUID_PATTERN)


@dataclass(frozen=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class Routed:
    """Everything one decision produces: records, the aggregate's new state, the audit record."""

    record: AuditRecord
    outputs: list[Output] = field(default_factory=list)
    subject: str | None = None
    state: State | None = None


class Router:
    """Decides each event of an outbox and builds the notices the router signs."""

    def __init__(self, registry: Registry, router_keys: Keyring, rules: Rules) -> None:
        if router_keys.owner != ROUTER:
            raise ValueError("the router signs with the svc-router keyring")
        self.registry = registry
        self.keys = router_keys
        self.rules = rules

    def route(
        self,
        wire: bytes,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        state_of: Callable[[str], State | None],
    ) -> Routed:
        """Decide one record of ``topic``; ``state_of(subject)`` reads an aggregate's state."""
        position = position_of(topic, partition, offset)
        received = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        outcome = decide_record(wire, topic, position, received, self.registry, self.rules, state_of)
        decision, verified = outcome.decision, outcome.verified
        if not decision.accepted:
            routed = self._rejected(wire, position, received, decision)
        else:
            assert verified is not None
            subject = verified.envelope.subject
            record = self._record(wire, position, received, decision)
            outputs = [Output(inbox(r), subject.encode(), wire) for r in decision.deliver_to]
            routed = Routed(record, [*outputs, self._audit(record)])
        if verified is not None:
            routed.subject, routed.state = verified.envelope.subject, outcome.state
        return routed

    def _record(
        self,
        wire: bytes,
        position: str,
        received: datetime,
        decision: Decision,
        notice: dict[str, Any] | None = None,
    ) -> AuditRecord:
        fields = event_fields(wire)
        event = fields.get("event") or {}
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        source = event.get("source")
        sender = source.removeprefix("urn:jointbus:") if isinstance(source, str) else None
        return AuditRecord(
            position=position,
            received_at=format_time(received),
            decision="accepted" if decision.accepted else "rejected",
            reason=decision.reason,
            detail=decision.detail[:1000],
            event_id=(event_id or "")[:64] or None,
            sender=(sender or "")[:64] or None,
            delivered_to=decision.deliver_to if decision.accepted else [],
            notice=notice,
            **fields,
        )

    def _rejected(
        self,
        wire: bytes,
        position: str,
        received: datetime,
        decision: Decision,
    ) -> Routed:
        provisional = self._record(wire, position, received, decision)
        outputs: list[Output] = []
        notice = None
        sender = provisional.sender
        if sender is not None and self.registry.is_agency(sender):
            event = provisional.event or {}
            notice = self._notice(provisional, str(event.get("type", ""))[:200], received, event)
            outputs.append(Output(inbox(sender), notice["subject"].encode(), to_wire(notice)))
        record = self._record(wire, position, received, decision, notice)
        log.info(
            "event rejected",
            event_id=record.event_id,
            agency=sender,
            reason=record.reason,
            position=position,
            detail=record.detail,
        )
        return Routed(record, [*outputs, self._audit(record)])

    def _notice(
        self, record: AuditRecord, event_type: str, received: datetime, event: dict[str, Any]
    ) -> dict[str, Any]:
        notice_id = uuid7_from(received, f"notice|{record.position}".encode())
        correlation = event.get("correlationid")
        causation = record.event_id
        return compose(
            keyring=self.keys,
            registry=self.registry,
            event_type="rejection",
            subject=f"notice/{notice_id}",
            recipients=[str(record.sender)],
            payload=RejectionNotice(
                rejected_event_id=record.event_id or "",
                rejected_type=event_type,
                reason=str(record.reason),
                detail=record.detail,
            ),
            correlationid=correlation if _is_uuid(correlation) else notice_id,
            causationid=causation if _is_uuid(causation) else None,
            now=received,
            event_id=notice_id,
        )

    def overdue(self, state: State, now: datetime) -> list[Routed]:
        """Overdue alerts for an aggregate whose deadlines have passed (deterministic ids)."""
        routed = []
        for item in overdue_items(state, now):
            position = f"deadline:{state['subject']}:{item.what}:{item.deadline.isoformat()}"
            alert_id = uuid7_from(item.due, position.encode())
            alert = compose(
                keyring=self.keys,
                registry=self.registry,
                event_type="deadline.overdue",
                subject=state["subject"],
                recipients=item.parties,
                payload=ItemOverdue(
                    aggregate=state["subject"],
                    what=item.what,
                    deadline=item.deadline,
                    responsible=item.responsible,
                ),
                now=item.due,
                event_id=alert_id,
            )
            wire = to_wire(alert)
            record = AuditRecord(
                position=position,
                received_at=format_time(item.due),
                decision="emitted",
                event_id=alert_id,
                sender=ROUTER,
                event=alert,
                delivered_to=item.parties,
            )
            outputs = [Output(inbox(p), state["subject"].encode(), wire) for p in item.parties]
            routed.append(Routed(record, [*outputs, self._audit(record)]))
        return routed

    @staticmethod
    def _audit(record: AuditRecord) -> Output:
        return Output(AUDIT_TOPIC, record.position.encode(), record.to_bytes())


def _is_uuid(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(_UUID.match(value))
