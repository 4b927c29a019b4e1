"""What one agency's gateway does, apart from HTTP: publish for internal systems (once per
idempotency key), read the agency's inbox into the store, send receipts on acknowledgement,
and answer what became of an event or an aggregate.

The inbox is read by a ``Subscriber`` in its own consumer group; a delivery is verified end
to end and opened, stored, and only then its offset committed. Receipts are not sent on
reading but when an internal system acknowledges the delivery (``ack``); refusals (an event
the agency cannot open) are still answered at once with a signed refusal receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from jointbus import context
from jointbus.gateway import models
from jointbus.gateway.errors import GatewayError, not_found
from jointbus.gateway.store import GatewayStore, InboxRow, SentRow
from jointbus.gateway.tokens import Caller
from jointbus.publishing import PayloadError, checked
from jointbus.schemas.catalog import family_of, kind_of, parse_payload
from jointbus.schemas.envelope import MAX_ENVELOPE_BYTES, Envelope, to_wire
from jointbus.schemas.errors import ContractError
from jointbus.schemas.families.governance import GOVERNANCE_SUBJECT
from jointbus.schemas.families.notice import AcceptanceNotice, RejectionNotice
from jointbus.schemas.families.receipt import Receipt
from jointbus.schemas.governance import Change, proposal
from jointbus.schemas.ids import parse_time, utcnow
from jointbus.schemas.lifecycle import Aggregate, Rules
from jointbus.schemas.verify import verify_event
from jointbus.streams import keystore
from jointbus.streams.sdk import Delivery, Publisher, Subscriber
from jointbus.streams.settings import Settings

log = structlog.get_logger("jointbus.gateway")

#: how often an open event stream asks whether its token still holds
STILL_HELD_EVERY = 2.0
#: GET /v1/registry follows the registry topic at most this often
FOLLOW_EVERY = 2.0
#: the aggregate kinds the gateway shows, by the path they are read at
AGGREGATE_PATHS = {"clues": "clue", "checks": "jointcheck", "rectifications": "rectification"}


def request_hash(body: dict[str, Any]) -> str:
    """The SHA-256 of a request with its keys sorted: the same request, however spelt (any
    JSON number and string, even those the payload check refuses later)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def lone_surrogate(value: object, where: str = "") -> str | None:
    """The path of the first string holding a lone UTF-16 surrogate (JSON's ``\\ud800``
    escapes decode to one; UTF-8, and so the wire, cannot carry it), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "(body)"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = lone_surrogate(key, where) or lone_surrogate(item, f"{where}.{key}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{where}.{i}".lstrip("."))
            if found:
                return found
    return None


class Gateway:
    """One agency's gateway: its publisher, its inbox reader and its store."""

    def __init__(self, cfg: Settings, agency: str, *, store_path: Path | None = None) -> None:
        self.cfg, self.agency = cfg, agency
        self.store = GatewayStore(store_path or gateway_dir(cfg, agency) / "gateway.sqlite")
        registry = keystore.load_registry(cfg.keystore_dir)
        ring = keystore.load_keyring(cfg.keystore_dir, agency)
        kafka = context.kafka(cfg, agency)
        self.publisher = Publisher(agency, ring, registry, cfg.bootstrap_servers, **kafka)
        self.subscriber = Subscriber(
            agency,
            ring,
            registry,
            cfg.bootstrap_servers,
            group_id=f"jointbus-inbox-{agency}-gateway",
            auto_receipts=False,
            **kafka,
        )
        self.subscriber.before_commit = self._settle
        self._unsettled: list[asyncio.Future[list[int | None]]] = []
        self.arrived = asyncio.Condition()  # notified on every stored delivery or decision
        self._locks: dict[tuple[str, ...], list[Any]] = {}  # key -> [lock, holders and waiters]
        self._reader: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Future[object]] = set()
        #: set when the inbox reader died: the process exits so its supervisor restarts it
        self.failed = asyncio.Event()
        self.failure: BaseException | None = None
        self._followed_at = float("-inf")  # when GET /v1/registry last followed the topic
        #: the router's rules with the bus's acknowledgement deadline (the registry's policy,
        #: when it sets one, takes precedence in both)
        self.rules = Rules(ack_within=timedelta(seconds=cfg.ack_deadline_seconds))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect to the bus (bounded; a refused credential is a typed error) and start
        reading the inbox."""
        await self.publisher.start()
        await self.subscriber.start()
        self._reader = asyncio.create_task(self._read_inbox(), name=f"gateway-inbox-{self.agency}")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.subscriber.stop()
        await self.publisher.stop()
        self.store.close()

    @property
    def reading(self) -> bool:
        """True while the inbox reader runs (the health check reports it)."""
        return self._reader is not None and not self._reader.done()

    async def _read_inbox(self) -> None:
        try:
            await self.subscriber.run(self._store_delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("inbox reader stopped", agency=self.agency)
            self.failure = exc
            self.failed.set()
            raise

    async def _store_delivery(self, d: Delivery) -> None:
        """Store one verified, opened delivery; note the decisions and receipts it carries."""
        env = d.envelope
        writes = [
            self.store.add_delivery(
                event_id=env.id,
                type_=env.type,
                family=d.family,
                sender=env.sender,
                subject=env.subject,
                time=env.time,
                envelope=d.verified.raw,
                payload=d.payload.model_dump(mode="json", exclude_none=True),
            )
        ]
        payload = d.payload
        if isinstance(payload, AcceptanceNotice):
            writes.append(self.store.note_decision(
                payload.accepted_event_id, accepted=True, reason=None, detail="",
                delivered_to=list(payload.delivered_to),
            ))  # fmt: skip
        elif isinstance(payload, RejectionNotice):
            writes.append(self.store.note_decision(
                payload.rejected_event_id, accepted=False, reason=payload.reason, detail=payload.detail,
                delivered_to=[],
            ))  # fmt: skip
        elif isinstance(payload, Receipt):
            writes.append(self.store.note_receipt(
                env.id, event_id=payload.event_id, recipient=env.sender, status=payload.status,
                reason=payload.reason, time=env.time,
            ))  # fmt: skip
        stored = asyncio.gather(*writes)  # one transaction with the fetch's other records
        self._unsettled.append(stored)
        stored.add_done_callback(lambda done: self._stored(env, done))
        if d.family.startswith("governance."):
            await stored
            await self.publisher.follow_registry()  # sign under the version now in force

    def _stored(self, env: Envelope, done: asyncio.Future[list[int | None]]) -> None:
        """A delivery is durable: say so, and wake the streams and webhooks waiting for it."""
        if done.cancelled() or done.exception() is not None:
            return  # ``settle`` raises it before any offset is committed
        log.info(
            "delivery stored", agency=self.agency, event_id=env.id, type=env.type,
            correlation_id=env.correlationid, cursor=done.result()[0],
        )  # fmt: skip
        self._wake()

    async def _settle(self) -> None:
        """Before the inbox reader commits offsets: every delivery it read is durable."""
        unsettled, self._unsettled = self._unsettled, []
        await asyncio.gather(*unsettled)

    def _wake(self) -> None:
        async def notify() -> None:
            async with self.arrived:
                self.arrived.notify_all()

        self._background(notify())

    # ------------------------------------------------------------------ publish
    @contextlib.asynccontextmanager
    async def _exclusive(self, *key: str) -> AsyncIterator[None]:
        """One holder at a time per ``key`` (an idempotency key, an acknowledged event); the
        lock is dropped when nobody holds or waits for it, so the map does not grow forever."""
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    async def publish(
        self, caller: Caller, request: models.PublishRequest, idem_key: str | None
    ) -> models.EventStatus:
        """Validate, sign, seal, publish and wait for the broker: once per idempotency key."""
        body = request.model_dump(mode="json", exclude_none=True)
        broken = lone_surrogate(body)
        if broken is not None:
            raise GatewayError(
                f"{broken}: a lone surrogate is no character (UTF-8 cannot carry it)",
                reason="schema",
                status=422,
                field=broken,
            )
        digest = request_hash(body)
        if idem_key is None:
            return await self._publish_new(caller, request, None, digest)
        async with self._exclusive(caller.name, idem_key):
            earlier = self.store.by_idempotency_key(caller.name, idem_key)
            if earlier is None:
                return await self._publish_new(caller, request, idem_key, digest)
            if earlier.request_hash != digest:
                raise GatewayError(
                    f"Idempotency-Key {idem_key!r} was used for another request (event {earlier.event_id})",
                    reason="idempotency_mismatch",
                    status=409,
                )
            if earlier.state != "published":  # written, then the send failed or the gateway died
                await self._send(earlier.wire, earlier.subject)
                await self.store.mark_published(earlier.event_id)
            return self.status(earlier.event_id, replayed=True)

    async def _publish_new(
        self, caller: Caller, request: models.PublishRequest, idem_key: str | None, digest: str
    ) -> models.EventStatus:
        try:
            family = checked(request.type, request.data).family
        except PayloadError as exc:
            raise GatewayError(exc.message, reason=exc.reason, status=422, field=exc.field) from None
        registry = self.publisher.registry
        unknown = [r for r in request.to if not registry.is_agency(r)]
        if unknown or len(set(request.to)) != len(request.to):
            reason = "unknown_recipient" if unknown else "duplicate_recipient"
            what = f"{', '.join(unknown)} not a member agency" if unknown else "an agency named twice"
            raise GatewayError(f"to: {what} (nothing was sent)", reason=reason, status=422, field="to")
        if self.agency in request.to:
            raise GatewayError(
                f"to: {self.agency} may not address itself (nothing was sent)",
                reason="not_authorized",
                status=422,
                field="to",
            )
        kind = kind_of(family)
        if request.subject is not None and kind is not None and request.subject.split("/")[0] != kind.name:
            raise GatewayError(
                f"subject: a {family} event belongs on a {kind.name}/… subject (nothing was sent)",
                reason="bad_transition",
                status=422,
                field="subject",
            )
        subject = request.subject or f"{kind.name if kind else 'event'}/{uuid.uuid4()}"
        try:
            envelope = self.publisher.build(
                family, subject, request.to, request.data,
                causationid=request.causation, correlationid=request.correlation,
            )  # fmt: skip
        except ContractError as exc:
            raise GatewayError(exc.message, reason=str(exc.reason), status=422) from None
        wire = to_wire(envelope)
        if len(wire) > MAX_ENVELOPE_BYTES:
            raise GatewayError(
                f"the signed envelope would be {len(wire)} bytes; the bus accepts at most "
                f"{MAX_ENVELOPE_BYTES} (nothing was sent)",
                reason="too_large",
                status=413,
            )
        await self.store.reserve(
            event_id=envelope["id"], caller=caller.name, idem_key=idem_key, request_hash=digest,
            type_=envelope["type"], subject=subject, time=envelope["time"], recipients=request.to, wire=wire,
        )  # fmt: skip
        await self._send(wire, subject)
        marked = self.store.mark_published(envelope["id"])
        if idem_key is None:  # nobody can retry it: the mark joins a later commit
            self._background(marked)
        else:  # a retry under the key's lock must find it published, not send it again
            await marked
        log.info(
            "event published", agency=self.agency, caller=caller.name, event_id=envelope["id"],
            type=envelope["type"], correlation_id=envelope["correlationid"],
        )  # fmt: skip
        return self.status(envelope["id"]).model_copy(update={"state": "published"})

    def _background(self, write: Coroutine[Any, Any, object]) -> None:
        """Something nobody waits for (a write joins the next commit; a crash before it
        leaves an event without an Idempotency-Key marked pending, which is all it says)."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def forward(self, caller: Caller, wire: bytes) -> models.EventStatus:
        """A pre-signed envelope (signed in the agency's own HSM): verified as the router
        will, then sent as it is. Its event id makes a retry harmless."""
        try:
            verified = verify_event(wire, self.publisher.registry, received_at=utcnow())
        except ContractError as exc:
            status = 413 if exc.reason == "too_large" else 422
            raise GatewayError(exc.message, reason=str(exc.reason), status=status) from None
        env = verified.envelope
        if env.sender != self.agency:
            raise GatewayError(
                f"signed by {env.sender}; this gateway publishes for {self.agency} only",
                reason="not_authorized",
                status=403,
            )
        if self.store.sent(env.id) is None:
            await self.store.reserve(
                event_id=env.id, caller=caller.name, idem_key=None, request_hash=None, type_=env.type,
                subject=env.subject, time=env.time, recipients=list(env.recipients), wire=wire,
            )  # fmt: skip
        await self._send(wire, env.subject)
        await self.store.mark_published(env.id)
        return self.status(env.id)

    async def propose(self, caller: Caller, request: models.ProposalRequest) -> models.EventStatus:
        """A governance proposal on the registry version in force, to every other voter."""
        from pydantic import TypeAdapter, ValidationError

        try:
            changes = TypeAdapter(list[Change]).validate_python(request.changes)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise GatewayError(
                f"changes: {first['msg']}",
                reason="schema",
                status=422,
                field=".".join(str(p) for p in first["loc"]),
            ) from None
        await self.publisher.follow_registry()
        registry = self.publisher.registry
        now = utcnow()
        data = proposal(registry, changes, now, request.reason)
        others = [a for a in registry.voters if a != self.agency]
        envelope = self.publisher.build("governance.proposed", GOVERNANCE_SUBJECT, others, data, now=now)
        return await self.forward(caller, to_wire(envelope))

    async def _send(self, wire: bytes, subject: str) -> None:
        try:
            await (await self.publisher.send_wire(wire, subject))
        except KafkaError as exc:
            raise GatewayError(
                f"the broker did not take the event ({type(exc).__name__}); retry with the same "
                "Idempotency-Key",
                reason="broker_unavailable",
                status=503,
                retriable=True,
            ) from None

    # ------------------------------------------------------------------ what became of it
    def status(self, event_id: str, *, replayed: bool = False) -> models.EventStatus:
        """An event this gateway published: broker state, the router's decision, receipts."""
        row = self.store.sent(event_id)
        if row is None:
            raise not_found(f"event {event_id}")
        return event_status(row, self.store.receipts(event_id), replayed=replayed)

    async def wait_decided(self, event_id: str, within: float) -> models.EventStatus:
        """``status`` once the router decided (or after ``within`` seconds, still pending)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within), self.arrived:
                while self.status(event_id).decision == "pending":
                    await self.arrived.wait()
        return self.status(event_id)

    # ------------------------------------------------------------------ inbox
    def inbox(self, after: int, limit: int) -> models.InboxPage:
        rows = self.store.inbox_after(after, limit)
        return models.InboxPage(
            items=[inbox_item(r) for r in rows], next_cursor=rows[-1].cursor if rows else after
        )

    async def follow(self, after: int, still_held: Callable[[], bool]) -> AsyncIterator[models.InboxItem]:
        """Every delivery after ``after``, then each new one as it is stored (for SSE), while
        ``still_held()`` (the caller's token is not removed; asked at least every few seconds)."""
        while still_held():
            rows = self.store.inbox_after(after, 100)
            for row in rows:
                yield inbox_item(row)
                after = row.cursor
            if not rows:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STILL_HELD_EVERY), self.arrived:
                        if self.store.last_cursor() <= after:
                            await self.arrived.wait()

    async def ack(self, caller: Caller, event_id: str) -> models.AckAnswer:
        """The internal system has the delivery: send its signed receipt (once)."""
        async with self._exclusive("ack", event_id):
            row = self.store.inbox_item(event_id)
            if row is None:
                raise not_found(f"delivery {event_id}")
            if row.acked_at is None:
                env = Envelope.model_validate(row.envelope)
                queued = await self.publisher.submit_receipt(env)
                receipt_id = None
                if queued is not None:
                    receipt_id, future = queued
                    await future
                await self.store.mark_acked(event_id, caller.name, receipt_id)
                log.info(
                    "delivery acknowledged", agency=self.agency, caller=caller.name, event_id=event_id,
                    receipt_id=receipt_id, correlation_id=env.correlationid,
                )  # fmt: skip
                row = self.store.inbox_item(event_id)
                assert row is not None
        return models.AckAnswer(id=event_id, acked_at=row.acked_at or "", receipt_id=row.receipt_id)

    # ------------------------------------------------------------------ aggregates
    def aggregate(self, path: str, ident: str, *, contents: bool) -> models.AggregateView:
        """An aggregate as this agency saw it: its events (sent and received, in time order)
        run through the lifecycle rules; ``partial`` when some step was not seen here. The
        payloads are shown only with ``contents`` (a caller that may read the inbox: they
        may be opened clues)."""
        kind = AGGREGATE_PATHS[path]
        subject = f"{kind}/{ident}"
        sent, received = self.store.subject_history(subject)
        steps = _history(sent, received)
        if not steps:
            raise not_found(subject)
        aggregate, partial = Aggregate(subject), False
        registry = self.publisher.registry
        for step, env in steps:
            if step.decision == "rejected":
                continue
            family = family_of(env.type)
            payload = None if env.sealed else parse_payload(env.type, step.data)  # as the router saw it
            after, _ = self.rules.decide(
                aggregate, env, family, payload, registry=registry,
                lookup=lambda _s: None, received=parse_time(env.time),
            )  # fmt: skip
            if after is None:
                partial = True  # an earlier step of it is not in this agency's view
                continue
            aggregate = after
        state = aggregate.state.model_dump(mode="json") if aggregate.state is not None else None
        return models.AggregateView(
            subject=subject,
            kind=kind,
            status=state["status"] if state else None,
            state=state,
            partial=partial,
            history=[s if contents else s.model_copy(update={"data": {}}) for s, _ in steps],
        )

    async def registry_info(self) -> models.RegistryInfo:
        """The registry version in force, followed from the registry topic first (at most
        every ``FOLLOW_EVERY`` seconds: each follow reads the topic with a new consumer)."""
        now = asyncio.get_running_loop().time()
        if now - self._followed_at >= FOLLOW_EVERY:
            self._followed_at = now
            await self.publisher.follow_registry()
        reg = self.publisher.registry
        return models.RegistryInfo(
            version=reg.version,
            digest=reg.digest,
            chair=reg.chair,
            agencies=[
                models.AgencyInfo(id=m.id, name_zh=m.name_zh, name_en=m.name_en)
                for m in reg.members
                if m.kind == "agency"
            ],
        )


def _history(sent: list[SentRow], received: list[InboxRow]) -> list[tuple[models.HistoryEntry, Envelope]]:
    """Sent and received events of one subject in time order, each with its envelope."""
    steps: list[tuple[models.HistoryEntry, Envelope]] = []
    for s in sent:
        raw = json.loads(s.wire)
        env = Envelope.model_validate(raw)
        steps.append(
            (
                models.HistoryEntry(
                    id=s.event_id, type=s.type, direction="sent", sender=env.sender,
                    recipients=s.recipients, time=s.time, decision=s.decision or "pending",
                    reason=s.reason, causation=env.causationid, correlation=env.correlationid,
                    data={} if env.sealed else raw["data"],  # a sealed one's content is not kept
                ),
                env,
            )
        )  # fmt: skip
    for r in received:
        env = Envelope.model_validate(r.envelope)
        steps.append(
            (
                models.HistoryEntry(
                    id=r.event_id, type=r.type, direction="received", sender=r.sender,
                    recipients=list(env.recipients), time=r.time, decision="accepted", reason=None,
                    causation=env.causationid, correlation=env.correlationid, data=r.payload,
                ),
                env,
            )
        )  # fmt: skip
    steps.sort(key=lambda s: (parse_time(s[0].time), s[0].id))
    return steps


def event_status(
    row: SentRow, receipts: list[dict[str, Any]], *, replayed: bool = False
) -> models.EventStatus:
    return models.EventStatus(
        id=row.event_id,
        type=row.type,
        subject=row.subject,
        time=row.time,
        recipients=row.recipients,
        state=row.state,
        decision=row.decision or "pending",
        reason=row.reason,
        detail=row.detail or None,
        delivered_to=row.delivered_to,
        receipts=[models.ReceiptInfo(**r) for r in receipts],
        replayed=replayed,
    )


def inbox_item(row: InboxRow) -> models.InboxItem:
    env = row.envelope
    return models.InboxItem(
        cursor=row.cursor,
        id=row.event_id,
        type=row.type,
        family=row.family,
        sender=row.sender,
        subject=row.subject,
        time=row.time,
        recipients=list(env["recipients"]),
        correlation=env["correlationid"],
        causation=env.get("causationid"),
        sealed=str(env["datacontenttype"]).endswith("sealed+json"),
        data=row.payload,
        envelope=env,
        acked_at=row.acked_at,
        receipt_id=row.receipt_id,
    )


def gateway_dir(cfg: Settings, agency: str) -> Path:
    """The private folder of ``agency``'s gateway: its store and its tokens."""
    return cfg.home / "gateway" / agency
