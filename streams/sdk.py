"""The agency SDK: ``Publisher`` signs, seals and sends; ``Subscriber`` reads one's own inbox.

Both speak only the wire contract of ``schemas``; an agency system written in another
language does the same by following docs/wire-format.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from jointbus.schemas.catalog import CURRENT, Payload, family_of
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import CLOUDEVENTS_CONTENT_TYPE, MAX_ENVELOPE_BYTES, Envelope, to_wire
from jointbus.schemas.errors import ContractError, JointbusError, Reason, rejection
from jointbus.schemas.families.notice import AcceptanceNotice, RejectionNotice
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.schemas.verify import verify_event
from jointbus.streams.clients import close_client, readable_partitions, start_client
from jointbus.streams.judge import Accepted, Duplicate, InboxJudge, Judgement, Refused
from jointbus.streams.judge import Delivery as Delivery  # the SDK's public type, judged there
from jointbus.streams.keystore import private_dir
from jointbus.streams.registry_feed import follow, follow_chain
from jointbus.streams.topics import inbox, outbox, registry_version_of

log = structlog.get_logger("jointbus.sdk")
HEADERS = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
#: how often, and how far apart, a Subscriber looks for a newer registry version before
#: refusing what one may lift (``judge.STALE_REASONS``)
STALE_TRIES, STALE_PAUSE = 4, 0.5


@dataclass(frozen=True)
class RouteResult:
    """The router's decision on a published event, from its signed notice to the sender."""

    event_id: str
    accepted: bool
    reason: str | None = None
    detail: str = ""
    delivered_to: tuple[str, ...] = ()


class Publisher:
    """Publishes signed (and, when sensitive, sealed) events to the agency's own outbox.

    ``publish`` waits for the broker's acknowledgement (acks=all, idempotent producer);
    ``submit`` returns at once with a future, so many events travel in one batch.

    An envelope over ``MAX_ENVELOPE_BYTES`` is refused before it is sent (``too_large``).
    After any failed send the producer is replaced before the next one: an idempotent
    producer's sequence numbers no longer match the broker's after a refused batch, and
    every later send to that partition would fail with ``OutOfOrderSequenceNumber``.
    """

    def __init__(
        self,
        agency: str,
        keyring: Keyring,
        registry: Registry,
        bootstrap: str,
        *,
        follow_registry: bool = True,
        **kafka: Any,
    ) -> None:
        self.agency = agency
        self._follow = follow_registry
        self._watch: AIOKafkaConsumer | None = None
        self._answers: dict[str, RouteResult] = {}
        self.keyring = keyring
        self.registry = registry
        self.topic = outbox(agency)
        self._bootstrap = bootstrap
        self._kafka = kafka
        self._producer = self._new_producer()
        self._failed = False
        self.replaced = 0  # producers replaced after a failed send

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=1024 * 1024,
            **self._kafka,
        )

    async def start(self) -> None:
        """Connect (bounded in time; a refused password or protocol is a typed error), then
        follow the registry to the version in force (the key to sign with may be newer)."""
        await start_client(self._producer, self._bootstrap, self._kafka)
        if self._follow:
            await self.follow_registry()

    async def follow_registry(self) -> bool:
        """Move to the newest registry version the registry topic proves (True if it moved).
        Best effort: a registry topic this principal cannot read leaves the registry as is."""
        try:
            followed = await follow(self.registry, self._bootstrap, **self._kafka)
        except (KafkaError, JointbusError) as exc:
            log.warning("registry not followed", agency=self.agency, error=type(exc).__name__)
            return False
        moved = followed.version != self.registry.version
        self.registry = followed
        return moved

    async def stop(self) -> None:
        await self._producer.stop()
        if self._watch is not None:
            await close_client(self._watch)
            self._watch = None

    async def reply(
        self,
        to: Envelope,
        family: str,
        payload: Payload | dict[str, Any],
        recipients: Sequence[str] | None = None,
        **kw: Any,
    ) -> str:
        """Continue ``to``'s aggregate: same subject, ``to`` as the cause, its conversation
        (correlation) carried on; by default back to its sender. Returns the new event's id."""
        return await self.publish(
            family,
            to.subject,
            list(recipients) if recipients is not None else [to.sender],
            payload,
            causationid=to.id,
            correlationid=to.correlationid or to.id,
            **kw,
        )

    async def publish_routed(
        self,
        family: str,
        subject: str,
        recipients: Sequence[str],
        payload: Payload | dict[str, Any],
        *,
        within: float = 30.0,
        **kw: Any,
    ) -> RouteResult:
        """Publish one event and wait (at most ``within`` seconds) for the router's decision:
        accepted, with the agencies it was delivered to, or rejected, with the reason code
        and detail. Read from the sender's own inbox, where the router signs its answer."""
        await self.watch_decisions()
        event_id = await self.publish(family, subject, recipients, payload, **kw)
        (result,) = await self.decisions([event_id], within=within)
        return result

    async def watch_decisions(self) -> None:
        """Start reading the router's answers (before publishing what they answer)."""
        await self._watcher()

    async def decisions(self, event_ids: Sequence[str], *, within: float = 30.0) -> list[RouteResult]:
        """The router's decisions on ``event_ids`` (published after ``watch_decisions``),
        in their order; ``not_routed`` when they are not all in within ``within`` seconds."""
        watch = await self._watcher()
        waiting = set(event_ids)
        try:
            async with asyncio.timeout(within):
                while not waiting <= self._answers.keys():
                    batch = await watch.getmany(timeout_ms=200, max_records=500)
                    for records in batch.values():
                        for record in records:
                            self._note_answer(record.value, record.timestamp)
        except TimeoutError:
            missing = len(waiting - self._answers.keys())
            raise JointbusError(
                f"{missing} of {len(waiting)} events not decided within {within:g} s: is a worker running?",
                reason="not_routed",
            ) from None
        return [self._answers.pop(e) for e in event_ids]

    async def _watcher(self) -> AIOKafkaConsumer:
        """A reader of this agency's inbox positioned at its end (before the send)."""
        if self._watch is None:
            watch = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                isolation_level="read_committed",
                **self._kafka,
            )
            await start_client(watch, self._bootstrap, self._kafka)
            tps = [
                TopicPartition(inbox(self.agency), p)
                for p in await readable_partitions(watch, inbox(self.agency))
            ]
            watch.assign(tps)
            await watch.seek_to_end(*tps)
            for tp in tps:
                await watch.position(tp)  # resolve now: nothing sent after this is missed
            self._watch = watch
        return self._watch

    def _note_answer(self, wire: bytes, timestamp_ms: int) -> None:
        """Remember the router's answer carried by ``wire``, if it is one (verified)."""
        try:
            received = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
            verified = verify_event(wire, self.registry, received_at=received, check_skew=False)
        except ContractError:
            return
        env, payload = verified.envelope, verified.payload
        if env.sender != ROUTER or env.causationid is None:
            return
        if isinstance(payload, AcceptanceNotice):
            answer = RouteResult(env.causationid, True, delivered_to=tuple(payload.delivered_to))
        elif isinstance(payload, RejectionNotice):
            answer = RouteResult(env.causationid, False, payload.reason, payload.detail)
        else:
            return
        self._answers[env.causationid] = answer
        while len(self._answers) > 10_000:  # answers nobody waits for any more
            self._answers.pop(next(iter(self._answers)))

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def build(
        self,
        family: str,
        subject: str,
        recipients: Sequence[str],
        payload: Payload | dict[str, Any],
        **kw: Any,
    ) -> dict[str, Any]:
        """A signed envelope from this agency (validated, sealed when sensitive)."""
        return compose(
            keyring=self.keyring,
            registry=self.registry,
            event_type=family,
            subject=subject,
            recipients=list(recipients),
            payload=payload,
            **kw,
        )

    async def submit(
        self,
        family: str,
        subject: str,
        recipients: Sequence[str],
        payload: Payload | dict[str, Any],
        **kw: Any,
    ) -> tuple[str, asyncio.Future[Any]]:
        """Queue an event; returns its id and a future resolved when the broker has it.

        Raises ``SchemaError`` (``too_large``) for an envelope the bus would refuse anyway.
        """
        envelope = self.build(family, subject, recipients, payload, **kw)
        wire = to_wire(envelope)
        if len(wire) > MAX_ENVELOPE_BYTES:
            raise rejection(
                Reason.TOO_LARGE,
                f"the envelope is {len(wire)} bytes; the bus accepts at most {MAX_ENVELOPE_BYTES} "
                "(nothing was sent)",
            )
        future = await self.send_wire(wire, subject)
        return envelope["id"], future

    async def publish(
        self,
        family: str,
        subject: str,
        recipients: Sequence[str],
        payload: Payload | dict[str, Any],
        **kw: Any,
    ) -> str:
        """Publish one event and wait until the broker acknowledged it; returns its id."""
        event_id, future = await self.submit(family, subject, recipients, payload, **kw)
        await future
        return event_id

    async def send_wire(self, wire: bytes, key: str) -> asyncio.Future[Any]:
        """Send already-built wire bytes to the outbox as they are (the router judges them;
        no size check here, so hostile records can be tested)."""
        if self._failed:
            await self._replace_producer()
        try:
            fut: asyncio.Future[Any] = await self._producer.send(
                self.topic, wire, key=key.encode(), headers=HEADERS
            )
        except Exception:
            self._failed = True
            raise
        fut.add_done_callback(functools.partial(self._note_failure, self._producer))
        return fut

    def _note_failure(self, producer: AIOKafkaProducer, fut: asyncio.Future[Any]) -> None:
        """A send of the current producer failed: replace it before the next send."""
        if producer is self._producer and (fut.cancelled() or fut.exception() is not None):
            self._failed = True

    async def _replace_producer(self) -> None:
        """A fresh idempotent producer (new producer id, sequences from 0) for the next send."""
        old, self._producer = self._producer, self._new_producer()
        self._failed = False
        self.replaced += 1
        await close_client(old)  # delivers, or fails, what it still holds
        await self.start()
        log.warning("producer replaced after a failed send", agency=self.agency, topic=self.topic)

    async def flush(self) -> None:
        await self._producer.flush()

    async def submit_receipt(self, env: Envelope) -> tuple[str, asyncio.Future[Any]] | None:
        """Queue the signed receipt of ``env`` to its sender (``opened`` when it was sealed,
        ``received`` otherwise); None when its family is not answered by receipts."""
        spec = CURRENT.get(family_of(env.type))
        if spec is None or not spec.answered:
            return None
        status = "opened" if env.sealed else "received"
        return await self.submit(
            "receipt",
            env.subject,
            [env.sender],
            {"event_id": env.id, "event_type": env.type, "status": status},
            correlationid=env.correlationid,
            causationid=env.id,
        )


class SeenStore:
    """Event ids already handed to the application: in memory, and on disk when given a path."""

    def __init__(self, path: Path | None, memory: int = 200_000) -> None:
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._memory = memory
        self._db: sqlite3.Connection | None = None
        if path is not None:
            private_dir(path.parent)
            self._db = sqlite3.connect(path)
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def __contains__(self, event_id: str) -> bool:
        if event_id in self._recent:
            return True
        if self._db is None:
            return False
        row = self._db.execute("SELECT 1 FROM seen WHERE id = ?", (event_id,)).fetchone()
        return row is not None

    def add(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > self._memory:
            self._recent.popitem(last=False)
        if self._db is not None:
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event_id,))

    def commit(self) -> None:
        if self._db is not None:
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()


class Subscriber:
    """Async iterator over this agency's inbox.

    Each event is verified again end to end (signature, key, rights), sealed payloads are
    opened, duplicates are dropped by event id, offsets are committed only after the loop
    body that handled the event returns, and a signed receipt is sent automatically.
    """

    def __init__(
        self,
        agency: str,
        keyring: Keyring,
        registry: Registry,
        bootstrap: str,
        *,
        group_id: str | Literal[False] | None = None,
        receipts: bool = True,
        seen_path: Path | None = None,
        from_beginning: bool = True,
        until_end: bool = False,
        auto_receipts: bool = True,
        **kafka: Any,
    ) -> None:
        self.agency = agency
        #: send each delivery's receipt once the application handled it; False leaves it to
        #: the application (``Publisher.submit_receipt``), e.g. after a person confirmed it
        self.auto_receipts = auto_receipts
        #: awaited before offsets are committed: an application that stores deliveries
        #: asynchronously makes them durable here, so a committed offset never outruns them
        self.before_commit: Callable[[], Awaitable[None]] | None = None
        self.keyring = keyring
        #: decides each record, apart from Kafka (holds the registry versions known here)
        self.judge = InboxJudge(agency, keyring.openers(), registry)
        #: called with each refused record (after its refusal receipt went out, if any)
        self.on_refusal: Callable[[Refused], None] | None = None
        self._topic = inbox(agency)
        self._group = None if group_id is False else group_id or f"jointbus-inbox-{agency}"
        self._consumer = AIOKafkaConsumer(
            *([self._topic] if self._group else []),
            bootstrap_servers=bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level="read_committed",
            **kafka,
        )
        self._bootstrap = bootstrap
        self._kafka = kafka
        self._publisher = Publisher(agency, keyring, registry, bootstrap, **kafka) if receipts else None
        self.seen = SeenStore(seen_path)
        self.until_end = until_end
        self._from_beginning = from_beginning
        self.duplicates = 0
        self.rejected = 0

    @property
    def registry(self) -> Registry:
        """The newest registry version known here."""
        return self.judge.registry

    @property
    def versions(self) -> dict[int, Registry]:
        """Every registry version known here, by number (deliveries name theirs)."""
        return self.judge.versions

    @property
    def in_force_from(self) -> dict[int, datetime]:
        """When each followed version came into force."""
        return self.judge.in_force_from

    async def start(self) -> None:
        """Connect (bounded in time); without a group, assign every partition of the inbox.

        A wrong password, a protocol mismatch or an inbox the principal may not read fails
        here with a typed error (``auth_failed``, ``security_protocol``, ``not_authorized``).
        """
        await start_client(self._consumer, self._bootstrap, self._kafka)
        try:
            if self._group is None:  # a reader without a group: every partition, nothing committed
                partitions = await readable_partitions(self._consumer, self._topic)
                tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
                self._consumer.assign(tps)
                if self._from_beginning:
                    await self._consumer.seek_to_beginning(*tps)
                else:
                    await self._consumer.seek_to_end(*tps)
            if self._publisher is not None:
                await self._publisher.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            raise

    async def stop(self) -> None:
        await self._consumer.stop()
        if self._publisher is not None:
            await self._publisher.stop()
        self.seen.close()

    async def __aenter__(self) -> Subscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _follow_registry(self) -> bool:
        """Move to the newest registry version the registry topic proves (True if it moved);
        an event signed under a version this Subscriber has not seen yet waits for it."""
        for attempt in range(STALE_TRIES):
            try:
                chain = await follow_chain(self.registry, self._bootstrap, **self._kafka)
            except (KafkaError, JointbusError) as exc:
                log.warning("registry not followed", agency=self.agency, error=type(exc).__name__)
                return False
            if chain:
                self.judge.adopt(chain)
                if self._publisher is not None:
                    self._publisher.registry = self.registry
                return True
            if attempt + 1 < STALE_TRIES:
                await asyncio.sleep(STALE_PAUSE)
        return False

    async def _reached_end(self, ends: dict[TopicPartition, int]) -> bool:
        assigned = self._consumer.assignment()
        if not assigned:
            return False
        missing = [tp for tp in assigned if tp not in ends]
        if missing:
            ends.update(await self._consumer.end_offsets(missing))
        for tp in assigned:
            if await self._consumer.position(tp) < ends[tp]:
                return False
        return True

    async def _batches(self) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
        """Fetched records per partition; with ``until_end``, up to the end as it was at start."""
        ends: dict[TopicPartition, int] = {}
        while not (self.until_end and await self._reached_end(ends)):
            batch = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batch.items():
                yield tp, records

    async def _decide(self, record: Any, partition: int) -> Delivery | None:
        """Judge one record (again under a newer registry version when the refusal may come
        from a version not seen here yet); answer a refusal. The delivery, or None."""
        version = registry_version_of(record.headers)
        if version is not None and version > self.registry.version:
            await self._follow_registry()  # decided under a version not seen here yet
        judgement = self._judged(record, partition, version)
        if isinstance(judgement, Refused) and judgement.stale and await self._follow_registry():
            judgement = self._judged(record, partition, version)
        if isinstance(judgement, Accepted):
            return judgement.delivery
        if isinstance(judgement, Duplicate):
            self.duplicates += 1
            return None
        self.rejected += 1
        log.warning(
            "inbox event refused",
            agency=self.agency,
            event_id=judgement.event_id or None,
            reason=judgement.reason,
            detail=judgement.detail,
            partition=partition,
            offset=record.offset,
        )
        await self._refuse(judgement)
        if self.on_refusal is not None:
            self.on_refusal(judgement)
        return None

    def _judged(self, record: Any, partition: int, version: int | None) -> Judgement:
        """The judge's decision on ``record``. The judge answers every content with a value;
        should it raise all the same (a bug), the record is refused as ``internal_error``
        and logged, and the inbox goes on."""
        try:
            return self.judge.judge(
                record.value,
                record.timestamp,
                version=version,
                partition=partition,
                offset=record.offset,
                seen=self.seen,
            )
        except Exception as exc:  # second line only: the judge itself refuses by value
            log.exception("inbox judge failed", agency=self.agency, partition=partition, offset=record.offset)
            return Refused(
                Reason.INTERNAL,
                f"the inbox judge failed ({type(exc).__name__})",
                partition=partition,
                offset=record.offset,
            )

    async def _refuse(self, refused: Refused) -> None:
        """Answer an authentic event this agency cannot open or accept with a signed refusal
        receipt (its reason code), so the sender and the bus learn it was never seen."""
        verified = refused.answer
        if self._publisher is None or verified is None or verified.id in self.seen:
            return
        env = verified.envelope
        await self._publisher.submit(
            "receipt",
            env.subject,
            [env.sender],
            {"event_id": env.id, "event_type": env.type, "status": "refused", "reason": refused.reason},
            correlationid=env.correlationid,
            causationid=env.id,
        )
        self.seen.add(env.id)
        log.info("refusal receipt sent", agency=self.agency, event_id=env.id, reason=refused.reason)

    async def _handled(self, delivery: Delivery) -> None:
        """After the application returned: remember the id, send the receipt."""
        self.seen.add(delivery.id)
        await self._receipt(delivery)

    async def _receipt(self, delivery: Delivery) -> None:
        if self._publisher is not None and self.auto_receipts:
            await self._publisher.submit_receipt(delivery.envelope)

    async def _deliveries(self) -> AsyncGenerator[Delivery, None]:
        """The one reading loop: deliveries in inbox order, each handled (id remembered,
        receipt sent) when the consumer asks for the next; a partition's offsets committed
        after its fetched records. Refused records are answered and passed over."""
        async for tp, records in self._batches():
            for record in records:
                delivery = await self._decide(record, tp.partition)
                if delivery is not None:
                    yield delivery  # the application handles it here
                    await self._handled(delivery)
            await self._commit(tp, records[-1].offset + 1)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        """Deliveries in inbox order; commit happens when the loop asks for the next one.

        With ``until_end`` the iteration stops at the end of the inbox as it was at start.
        """
        return self._deliveries()

    async def run(self, handler: Callable[[Delivery], Awaitable[bool | None]]) -> None:
        """Call ``handler`` for each delivery; stop after one for which it returns True.

        The event's offset is committed, and its receipt sent, once the handler returned —
        also for the last one, which a ``break`` out of ``async for`` cannot promise.
        """
        deliveries = self._deliveries()
        try:
            async for delivery in deliveries:
                if await handler(delivery):
                    await self._handled(delivery)
                    await self._commit(TopicPartition(self._topic, delivery.partition), delivery.offset + 1)
                    return
        finally:
            await deliveries.aclose()

    async def _commit(self, tp: TopicPartition, next_offset: int) -> None:
        self.seen.commit()
        if self.before_commit is not None:  # the application's own writes are durable first
            await self.before_commit()
        if self._publisher is not None:
            await self._publisher.flush()
        if self._group is not None:
            await self._consumer.commit({tp: next_offset})


def new_subject(kind: str) -> str:
    """A fresh aggregate subject such as ``clue/<uuid>``."""
    return f"{kind}/{uuid.uuid4()}"
