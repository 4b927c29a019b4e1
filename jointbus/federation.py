"""The demo's federation harness: one Publisher and one Subscriber per agency (or its
gateway, over HTTP), and what the scenario expects to see (deliveries, rejections, overdue
alerts)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from jointbus.schemas.catalog import parse_payload, spec_of
from jointbus.schemas.envelope import Envelope, to_wire
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.families.governance import GOVERNANCE_SUBJECT
from jointbus.schemas.families.notice import ItemOverdue, RejectionNotice
from jointbus.schemas.governance import Change, proposal
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring
from jointbus.schemas.projections import Projection, apply
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.schemas.verify import VerifiedEvent
from jointbus.streams.registry_feed import follow
from jointbus.streams.sdk import Delivery, Publisher, Subscriber
from jointbus.streams.security import kafka_kwargs
from jointbus.streams.settings import Settings

ACK_DEADLINE = 6.0  # seconds: the demo's acknowledgement deadline for transferred clues


@dataclass
class Expected:
    """What the scenario means to happen, to check against what the bus did."""

    rejections: dict[str, str] = field(default_factory=dict)  # event id -> reason
    overdue: set[str] = field(default_factory=set)  # subjects


class Sender(Protocol):
    """What the scenario asks of an agency's publishing side: the SDK's ``Publisher``, or
    ``GatewayMember`` for an agency behind its gateway."""

    agency: str

    @property
    def registry(self) -> Registry: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def follow_registry(self) -> bool: ...
    async def publish(
        self, family: str, subject: str, recipients: Sequence[str], payload: Any, **kw: Any
    ) -> str: ...
    async def send_wire(self, wire: bytes, key: str) -> asyncio.Future[Any]: ...


class GatewayMember:
    """An agency that plays its part over HTTP through its own gateway (``jointbus gateway
    run``): it publishes with POST /v1/events, sends pre-signed envelopes to /v1/envelopes,
    proposes registry changes at /v1/governance/proposals, reads its inbox as Server-Sent
    Events and acknowledges each delivery (the gateway then sends the receipt)."""

    def __init__(
        self, agency: str, url: str, token: str, registry: Registry, bootstrap: str, **kafka: Any
    ) -> None:
        from jointbus.gateway.client import GatewayClient

        self.agency = agency
        self.client = GatewayClient(url, token)
        self._registry = registry
        self._bootstrap, self._kafka = bootstrap, kafka

    @property
    def registry(self) -> Registry:
        return self._registry

    async def start(self) -> None:
        await self.client.registry()  # the gateway answers (and the token works) before anything else

    async def stop(self) -> None:
        await self.client.http.aclose()

    async def follow_registry(self) -> bool:
        """True once the gateway signs under a newer registry version than this one knew;
        the version itself is followed from the registry topic (the scenario holds none of
        this agency's keys or credentials)."""
        version = int((await self.client.registry())["version"])
        if version == self._registry.version:
            return False
        self._registry = await follow(self._registry, self._bootstrap, **self._kafka)
        return self._registry.version == version

    async def publish(
        self, family: str, subject: str, recipients: Sequence[str], payload: Any, **kw: Any
    ) -> str:
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json", exclude_none=True)
        sent = await self.client.publish(
            family,
            list(recipients),
            payload,
            subject=subject,
            causation=kw.pop("causationid", None),
            correlation=kw.pop("correlationid", None),
        )
        event_id: str = sent["id"]
        return event_id

    async def propose(self, changes: list[Change], reason: str) -> str:
        sent = await self.client.propose(
            [c.model_dump(mode="json", exclude_none=True) for c in changes], reason
        )
        event_id: str = sent["id"]
        return event_id

    async def send_wire(self, wire: bytes, key: str) -> asyncio.Future[Any]:
        await self.client.forward(wire)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def run(self, handler: Callable[[Delivery], Awaitable[bool]]) -> None:
        """Each delivery of the gateway's event stream to ``handler``, then acknowledged."""
        async for item in self.client.stream():
            delivery = delivery_of(item, self._registry)
            await handler(delivery)
            await self.client.ack(delivery.id)


def delivery_of(item: dict[str, Any], registry: Registry) -> Delivery:
    """A gateway inbox item as the SDK's ``Delivery`` (the gateway verified and opened it)."""
    envelope = Envelope.model_validate(item["envelope"])
    spec = spec_of(envelope.type)
    payload = parse_payload(envelope.type, item["data"])
    verified = VerifiedEvent(item["envelope"], envelope, spec, registry.member(envelope.sender), payload)
    return Delivery(envelope, payload, verified, 0, int(item["cursor"]))


class Federation:
    """The registry's agencies at work: a Publisher and a Subscriber each, or, for those
    named in ``gateways`` (agency → (url, token)), their gateway."""

    def __init__(
        self,
        cfg: Settings,
        registry: Registry,
        rings: dict[str, Keyring],
        gateways: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.cfg, self.registry, self.rings = cfg, registry, rings
        self.members = {
            a: GatewayMember(a, url, token, registry, cfg.bootstrap_servers, **kafka_kwargs(cfg, a))
            for a, (url, token) in (gateways or {}).items()
        }
        self.pubs: dict[str, Sender] = {
            a: self.members.get(a)
            or Publisher(a, rings[a], registry, cfg.bootstrap_servers, **kafka_kwargs(cfg, a))
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
            if a not in self.members
        }
        self.inbox: dict[str, dict[str, Delivery]] = defaultdict(dict)
        self.arrived = asyncio.Condition()
        self.tasks: list[asyncio.Task[None]] = []
        self.expected = Expected()

    async def __aenter__(self) -> Federation:
        for a in self.registry.agencies:
            await self.pubs[a].start()
            reader = self.members.get(a) or self.subs[a]
            if isinstance(reader, Subscriber):
                await reader.start()
            self.tasks.append(asyncio.create_task(reader.run(self._on(a))))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for a in self.registry.agencies:
            await self.pubs[a].stop()
        for sub in self.subs.values():
            await sub.stop()

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
        voters = pub.registry.voters
        others = [a for a in voters if a != proposer]
        member = self.members.get(proposer)
        if member is not None:  # the gateway signs the proposal at its own clock
            proposal_id = await member.propose(changes, reason)
            for r in others:
                await self.wait_for(r, lambda d: d.id == proposal_id)
            seen = await self.wait_for(others[0], lambda d: d.id == proposal_id)
            new_digest = str(getattr(seen.payload, "new_digest"))  # noqa: B009 - any proposal payload
        else:
            now = utcnow()
            payload = proposal(pub.registry, changes, now, reason)
            new_digest = str(payload["new_digest"])
            proposal_id = await self.send(
                proposer, "governance.proposed", GOVERNANCE_SUBJECT, others, payload, now=now
            )
        for agency in approvers:
            approval = {"proposal_id": proposal_id, "new_digest": new_digest}
            to = [a for a in voters if a != agency]
            await self.send(agency, "governance.approved", GOVERNANCE_SUBJECT, to, approval)
        for publisher in self.pubs.values():
            await eventually_moved(publisher)
        self.registry = self.pubs[approvers[0]].registry
        return self.registry

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


async def eventually_moved(publisher: Sender, within: float = 30.0) -> None:
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
