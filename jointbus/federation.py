"""The demo's federation harness: one Publisher and one Subscriber per agency, and what
the scenario expects to see (deliveries, rejections, overdue alerts)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.families.governance import GOVERNANCE_SUBJECT
from jointbus.schemas.families.notice import ItemOverdue, RejectionNotice
from jointbus.schemas.governance import Change, proposal
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring
from jointbus.schemas.projections import Projection, apply
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.streams.sdk import Delivery, Publisher, Subscriber
from jointbus.streams.security import kafka_kwargs
from jointbus.streams.settings import Settings

ACK_DEADLINE = 6.0  # seconds: the demo's acknowledgement deadline for transferred clues


@dataclass
class Expected:
    """What the scenario means to happen, to check against what the bus did."""

    rejections: dict[str, str] = field(default_factory=dict)  # event id -> reason
    overdue: set[str] = field(default_factory=set)  # subjects


class Federation:
    """The registry's agencies at work: a Publisher and a Subscriber each."""

    def __init__(self, cfg: Settings, registry: Registry, rings: dict[str, Keyring]) -> None:
        self.cfg, self.registry, self.rings = cfg, registry, rings
        self.pubs = {
            a: Publisher(a, rings[a], registry, cfg.bootstrap_servers, **kafka_kwargs(cfg, a))
            for a in registry.agencies
        }
        self.subs = {
            a: Subscriber(
                a,
                rings[a],
                registry,
                cfg.bootstrap_servers,
                group_id=f"jointbus-inbox-{a}-demo",
                seen_path=cfg.home / "inbox" / f"{a}.seen.sqlite",
                **kafka_kwargs(cfg, a),
            )
            for a in registry.agencies
        }
        self.inbox: dict[str, dict[str, Delivery]] = defaultdict(dict)
        self.arrived = asyncio.Condition()
        self.tasks: list[asyncio.Task[None]] = []
        self.expected = Expected()

    async def __aenter__(self) -> Federation:
        for a in self.registry.agencies:
            await self.pubs[a].start()
            await self.subs[a].start()
            self.tasks.append(asyncio.create_task(self.subs[a].run(self._on(a))))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for a in self.registry.agencies:
            await self.pubs[a].stop()
            await self.subs[a].stop()

    def observed(self) -> Projection:
        """The figures as the agencies themselves saw them: every event in any inbox once,
        rejections as their notices told the senders. Independent of the audit log."""
        seen: dict[str, Delivery] = {}
        for deliveries in self.inbox.values():
            for d in deliveries.values():
                seen.setdefault(d.id, d)
        projection = Projection(self.registry.agencies, unit="events seen in inboxes")
        for d in sorted(seen.values(), key=lambda d: (d.envelope.time, d.id)):
            if isinstance(d.payload, RejectionNotice):
                record = AuditRecord(
                    position=f"notice:{d.payload.rejected_event_id}",
                    received_at=d.envelope.time,
                    decision="rejected",
                    reason=d.payload.reason,
                    sender=d.envelope.recipients[0],
                )
            else:
                record = AuditRecord(
                    position=f"event:{d.id}",
                    received_at=d.envelope.time,
                    decision="emitted" if d.envelope.sender == ROUTER else "accepted",
                    event_id=d.id,
                    sender=d.envelope.sender,
                    event=d.verified.raw,
                    delivered_to=list(d.envelope.recipients),
                )
            apply(projection, record)
        return projection

    def _on(self, agency: str) -> Callable[[Delivery], Awaitable[bool]]:
        async def handle(d: Delivery) -> bool:
            async with self.arrived:
                self.inbox[agency][d.id] = d
                self.arrived.notify_all()
            return False

        return handle

    async def wait_for(self, agency: str, match: Callable[[Delivery], bool], within: float = 60) -> Delivery:
        """The first delivery to ``agency`` that matches (waiting for it)."""
        async with asyncio.timeout(within), self.arrived:
            while True:
                for d in self.inbox[agency].values():
                    if match(d):
                        return d
                await self.arrived.wait()

    async def send(
        self,
        agency: str,
        family: str,
        subject: str,
        to: list[str],
        payload: dict[str, Any],
        **kw: Any,
    ) -> str:
        """Publish as ``agency`` and wait until every recipient has it."""
        event_id = await self.pubs[agency].publish(family, subject, to, payload, **kw)
        for r in to:
            await self.wait_for(r, lambda d: d.id == event_id)
        return event_id

    async def govern(
        self, proposer: str, changes: list[Change], approvers: list[str], reason: str
    ) -> Registry:
        """A registry change proposed by ``proposer`` and approved by ``approvers``, each step
        delivered to every member; then every agency's Publisher follows the registry (no
        restart anywhere). Returns the version in force after it."""
        pub = self.pubs[proposer]
        now = utcnow()
        payload = proposal(pub.registry, changes, now, reason)
        voters = pub.registry.voters
        others = [a for a in voters if a != proposer]
        proposal_id = await self.send(
            proposer, "governance.proposed", GOVERNANCE_SUBJECT, others, payload, now=now
        )
        for agency in approvers:
            approval = {"proposal_id": proposal_id, "new_digest": payload["new_digest"]}
            to = [a for a in voters if a != agency]
            await self.send(agency, "governance.approved", GOVERNANCE_SUBJECT, to, approval)
        for publisher in self.pubs.values():
            await eventually_moved(publisher)
        self.registry = pub.registry
        return pub.registry

    async def attack(self, agency: str, envelope: dict[str, Any], reason: str) -> None:
        """Send a hostile event through ``agency``'s outbox; wait for the rejection notice."""
        await (await self.pubs[agency].send_wire(to_wire(envelope), envelope["subject"]))
        self.expected.rejections[envelope["id"]] = reason
        notice = await self.wait_for(
            agency,
            lambda d: (
                isinstance(d.payload, RejectionNotice) and d.payload.rejected_event_id == envelope["id"]
            ),
        )
        assert isinstance(notice.payload, RejectionNotice)
        if notice.payload.reason != reason:
            raise JointbusError(f"demo: expected {reason}, router said {notice.payload.reason}")


def overdue_of(aggregate: str) -> Callable[[Delivery], bool]:
    """Matches the overdue alert of ``aggregate``."""
    return lambda d: d.envelope.subject == aggregate and isinstance(d.payload, ItemOverdue)


def subject(kind: str) -> str:
    return f"{kind}/{uuid.uuid4()}"


async def eventually_moved(publisher: Publisher, within: float = 30.0) -> None:
    """Wait (bounded) until ``publisher`` follows the registry to a newer version: the
    router writes the version to the registry topic as it decides the last approval."""
    try:
        async with asyncio.timeout(within):
            moved = await publisher.follow_registry()
            while not moved:  # polled: the registry topic is another process's to write
                await asyncio.sleep(0.2)
                moved = await publisher.follow_registry()
    except TimeoutError:
        raise JointbusError(
            f"{publisher.agency} saw no new registry version within {within:.0f} s", reason="demo_failed"
        ) from None
