"""The bus worker: the router agent and the deadline monitor, as faust agents.

faust consumes the outboxes (group membership, partition assignment, offset commits); the
router's memory is rebuilt from the audit log at start (``Router.fold``), not kept in a
changelog, so what the router remembers is exactly what the log holds.

Writes are ordered, checked and fenced (``OrderedWriter``): the outputs of a batch of inputs
go to the broker in one Kafka transaction, and an input is acknowledged to faust, and so its
offset committed, only once that transaction is committed. If a write fails, routing stops,
the producer is replaced, the memory is rebuilt from what the log really holds, and every
unacknowledged input is routed again, in order, until written.

Several workers may run; one leads (``jointbus.streams.lease``) and the others stand by. The
transactional id is the same for every worker, so the leader's first act fences every
earlier one: a leader that stalled and lost its lease can write nothing more, and what it
had not committed is aborted. Readers of the router's topics read committed records only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NoReturn

import faust
import faust.tables
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerFenced, TransactionalIdAuthorizationFailed

from jointbus.agents.routing import HEADERS, Routed, Router
from jointbus.schemas.catalog import spec_of
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.streams import keystore, metrics
from jointbus.streams.broker import probe
from jointbus.streams.errors import KafkaAuthenticationError, KafkaAuthorizationError, KafkaProtocolError
from jointbus.streams.faustapp import make_app
from jointbus.streams.lease import Lease
from jointbus.streams.logs import adopt_stdlib_handlers
from jointbus.streams.reader import read_topic
from jointbus.streams.registry_feed import follow
from jointbus.streams.security import ROUTER_APP, kafka_kwargs
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, outbox, registry_header

log = structlog.get_logger("jointbus.worker")
APP_ID = ROUTER_APP
#: the router's transactional id, one per cluster: a starting router fences every earlier one
TRANSACTIONAL_ID = APP_ID
#: the lease group the workers join; the one that holds it routes
LEASE_GROUP = f"{APP_ID}-lease"
#: inputs whose outputs may be in one transaction (beyond it, routing waits for the commit)
WINDOW = 2000
#: how long a transaction gathers outputs before it is committed (latency for fewer commits)
COMMIT_EVERY = 0.02
#: how long the broker lets a transaction stay open before it aborts it and bumps the
#: producer's epoch: longer than a partition leader's election after a broker dies (its
#: session, 9 s, plus restart), so that an outage rarely costs a recovery
TRANSACTION_TIMEOUT_MS = 60_000
#: bounds on the broker's confirmation of a transaction's sends, and of its commit
SENT_WITHIN = 60.0
COMMITTED_WITHIN = 60.0
#: how long a fenced worker asks the lease group whether it still leads before it stops
FENCED_ANSWER_WITHIN = 12.0
#: exit statuses of a worker that must stop routing because another one leads
EXIT_FENCED = 75
EXIT_LEASE_LOST = 76


def stop_now(status: int, why: str) -> NoReturn:
    """End the process at once: another router leads, and nothing this one still has in
    flight may be retried (a retry with a new producer would fence the leader)."""
    log.critical(why, exit_status=status)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def fenced() -> NoReturn:
    """Stop: another router's producer has fenced this one's."""
    stop_now(EXIT_FENCED, "fenced: another router has taken over; this one stops")


def lease_lost() -> NoReturn:
    """Stop: the lease group gave the lease to another worker."""
    stop_now(EXIT_LEASE_LOST, "lease lost: another router leads; this one stops")


def new_router(settings: Settings, registry: Registry) -> Router:
    """A router with the settings' rules and the router's keys, memory empty."""
    return Router(
        registry,
        keystore.load_keyring(settings.keystore_dir, ROUTER),
        Rules(ack_within=timedelta(seconds=settings.ack_deadline_seconds)),
    )


class Memory:
    """The router's memory and how far into the audit log it has read. A standby keeps it
    caught up, so when it takes over it reads only what the log gained since, not the
    whole log (which takes hours once the log holds years)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.rule = LeafRule()  # the auditors' rule: the leaf count is theirs, positions kept compact
        self.next_offset = 0

    def take(self, offset: int, key: bytes | None, value: bytes) -> bool:
        """Fold one audit-topic record (the first of each position; later ones are
        repeats); whether it was a leaf. Never raises: a record that cannot be folded is
        logged loudly and passed, so a retry never skips another."""
        leaf = self.rule.admit(key)
        if leaf:
            self.router.leaves += 1  # a leaf even if unreadable: the tree counts it
            position = (key or b"").decode("utf-8", errors="replace")[:120]
            try:
                self.router.fold(AuditRecord.model_validate_json(value))
            except ValueError:
                log.error("unreadable audit record skipped", position=position)
            except Exception:  # a bug: the memory lacks this decision, and says so
                self.router.counts["internal_error"] += 1
                log.exception("audit record not folded into the router's memory", position=position)
        self.next_offset = offset + 1
        return leaf

    async def catch_up(self, bootstrap: str, **kafka: Any) -> int:
        """Fold what the log gained since the last call, to its end now; the leaves folded."""
        folded = 0
        async for offset, key, value in read_topic(bootstrap, AUDIT_TOPIC, self.next_offset, **kafka):
            folded += self.take(offset, key, value)
        return folded

    async def follow(self, bootstrap: str, **kafka: Any) -> None:
        """Fold the log as it grows, until cancelled (a standby's loop)."""
        while True:
            try:
                async for offset, key, value in read_topic(
                    bootstrap, AUDIT_TOPIC, self.next_offset, follow=True, **kafka
                ):
                    self.take(offset, key, value)
            except Exception as exc:  # the broker away: the log is the truth, wait for it
                log.warning("audit log not followed; retrying", error=repr(exc)[:200])
                await asyncio.sleep(1.0)


async def rebuild(router: Router, bootstrap: str, **kafka: Any) -> int:
    """Fold every leaf of the audit log into ``router`` (first record of each position)."""
    await Memory(router).catch_up(bootstrap, **kafka)
    return router.leaves


async def _always() -> bool:
    """The lease of a writer that runs alone (tests, benchmarks): always held."""
    return True


Ack = Callable[[], Awaitable[object]]
#: one outbox record: value (None for a tombstone), topic, partition, offset, timestamp in
#: ms, and whether the broker set that timestamp (LogAppendTime)
Source = tuple[bytes | None, str, int, int, int, bool]
#: Kafka's timestamp type of a record whose time the broker set
LOG_APPEND_TIME = 1


class OrderedWriter:
    """Sends each routed input's outputs in order and acknowledges inputs in order, each
    only once all its outputs are on the broker; recovers from a failed write by routing
    every unacknowledged input again with a new producer and a rebuilt memory."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        leads: Callable[[], Awaitable[bool | None]] = _always,
        memory: Memory | None = None,
    ) -> None:
        self.settings = settings
        self._warm = memory  # a standby's memory, caught up with the log until it took over
        #: asks the lease group now: True (holds the lease), False (lost it), None (no answer)
        self.leads = leads
        self.registry = registry
        self.kafka = kafka_kwargs(settings, ROUTER)
        self.router = new_router(settings, registry)
        self.lock = asyncio.Lock()  # the producer and its transaction
        self.deciding = asyncio.Lock()  # the router's memory (taken before ``lock``, never after)
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        # (input to route again, its ack, the futures of its outputs), in input order
        self._pending: deque[tuple[Source | None, Ack | None, list[Any]]] = deque()
        # (input, its ack, its decision) decided while a commit held the producer, in order
        self._unsent: deque[tuple[Source | None, Ack | None, Routed]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._broken: Exception | None = None  # a send of this producer failed at once
        self._open = False  # a transaction has begun on this producer
        self._retired: weakref.WeakSet[AIOKafkaProducer] = weakref.WeakSet()  # replaced by this writer
        self._sender_down = asyncio.Event()  # the producer's sender task ended (fenced, most likely)
        self._sender_error: BaseException | None = None
        self.transaction_timeout_ms = TRANSACTION_TIMEOUT_MS
        self._acker: asyncio.Task[None] | None = None
        self.recoveries = 0

    async def start(self) -> None:
        """Open the producer, fencing every earlier router, then rebuild the memory from the
        audit log: only once no earlier router can write is the log final."""
        async with self.lock:
            self._producer = await self._new_producer()
            self.router, folded = await self._rebuilt(memory=self._warm)
            self._acker = asyncio.create_task(self._commit_in_order())
        log.info(
            "router memory caught up with the audit log", leaves=self.router.leaves, read_at_start=folded
        )
        metrics.DEADLINES_OPEN.set(len(self.router.dues))  # before the first scan, not 0 until it
        metrics.OVERDUE_OPEN.set(len(self.router.overdue_open))
        self.ready.set()

    async def stop(self) -> None:
        """Commit what was decided, then close the producer: a clean stop leaves no open
        transaction for committed readers to wait on (its inputs, not acknowledged, are read
        again by the next router, which finds their positions decided and skips them)."""
        if self._producer is None:
            return
        try:
            async with asyncio.timeout(10.0), self.deciding, self.lock:
                # the lock held: no commit is in flight, so the committing task stops between two
                if self._acker is not None:
                    self._acker.cancel()
                await self._send_unsent()
                error = await self._confirmed([f for _, _, futures in self._pending for f in futures])
                if error is None:
                    error = await self._commit()
                if error is not None:
                    raise error
        except Exception as exc:  # the next router's producer aborts what is left open
            log.warning("open transaction not committed at stop", error=repr(exc)[:200])
        self._retired.add(self._producer)  # its sender's end is no failure to recover from
        await _stopped(self._producer)

    async def _rebuilt(self, *, patient: bool = False, memory: Memory | None = None) -> tuple[Router, int]:
        """A router whose memory is the audit log's: ``memory`` caught up (a standby's), or
        a new one read from the start; retried until the log is readable. Also the leaves
        read now.

        A refused login or ACL stops a starting worker at once (waiting will not mend it);
        a running one (``patient``) keeps retrying, loudly, until an operator mends it.
        """
        memory = memory or Memory(new_router(self.settings, self.registry))
        while True:
            try:  # a retry goes on from where the failed read stopped
                folded = await memory.catch_up(self.settings.bootstrap_servers, **self.kafka)
                return memory.router, folded
            except (KafkaAuthenticationError, KafkaAuthorizationError, KafkaProtocolError) as exc:
                log.critical("the router may not read the audit log", reason=exc.reason, detail=exc.message)
                if not patient:
                    raise
                await asyncio.sleep(5.0)
            except Exception as exc:  # broker away: the log is the truth, wait for it
                log.warning("audit log not readable yet; retrying", error=repr(exc)[:200])
                await asyncio.sleep(1.0)

    async def _new_producer(self) -> AIOKafkaProducer:
        """A started transactional producer with its first transaction begun: its id's
        epoch is bumped, so every earlier producer of the router is fenced and its open
        transaction aborted."""
        while True:
            await self._lease_confirmed(lease_lost)
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                transactional_id=TRANSACTIONAL_ID,
                transaction_timeout_ms=self.transaction_timeout_ms,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=512 * 1024,
                max_request_size=2 * 1024 * 1024,
                request_timeout_ms=30_000,
                **self.kafka,
            )
            try:
                await producer.start()
                await asyncio.wait_for(producer.begin_transaction(), 30.0)
            except TransactionalIdAuthorizationFailed:
                log.critical("the router may not use its transactional id", transactional_id=TRANSACTIONAL_ID)
                await _stopped(producer)
                raise
            except Exception as exc:  # broker away: keep trying, nothing moves meanwhile
                log.warning("producer not started; retrying", error=repr(exc)[:200])
                await _stopped(producer)
                await asyncio.sleep(1.0)
                continue
            self._open = True
            self._watch_sender(producer)
            return producer

    async def _lease_confirmed(self, lost: Callable[[], NoReturn], within: float | None = None) -> None:
        """Return only once the lease group confirms, now, that this worker holds the lease;
        ``lost()`` (which exits) when it says otherwise, or gives no answer within ``within``
        seconds. A producer about to start fences whoever else writes, so a worker that was
        cut off or frozen must not start one on the strength of what it last heard."""
        deadline = None if within is None else time.monotonic() + within
        while True:
            answer = await self.leads()
            if answer:
                return
            if answer is False or (deadline is not None and time.monotonic() > deadline):
                lost()
            log.warning("the lease group does not answer; no producer until it confirms the lease")
            await asyncio.sleep(1.0)

    def _watch_sender(self, producer: AIOKafkaProducer) -> None:
        """Notice at once when ``producer``'s sender task ends: aiokafka ends it with
        ``ProducerFenced`` when the producer's epoch was bumped, and the sends and the commit
        it still held would then wait forever. (A producer this writer replaced itself is
        fenced by its successor: no news.)"""
        self._sender_down.clear()
        self._sender_error = None
        sender: asyncio.Task[None] = producer._sender.sender_task

        def ended(task: asyncio.Task[None]) -> None:
            if producer in self._retired or task.cancelled() or task.exception() is None:
                return  # replaced, or stopped by ``producer.stop()`` (the sender then returns)
            self._sender_error = task.exception()
            self._sender_down.set()
            self._wake.set()

        sender.add_done_callback(ended)

    async def route(self, source: Source, ack: Ack) -> None:
        """Decide one outbox record and send its outputs; ``ack`` runs once they are
        committed. Deciding does not wait for a commit in flight: the outputs wait, in
        order, and go into the next transaction."""
        await self.ready.wait()
        while len(self._pending) + len(self._unsent) >= WINDOW:
            self._room.clear()
            await self._room.wait()
        async with self.deciding:
            self._unsent.append((source, ack, self._decide(source)))
        await self._flush()

    async def _flush(self) -> None:
        """Send what was decided, in order, unless a commit holds the producer: it sends
        them itself once the next transaction may begin."""
        if not self.lock.locked():
            async with self.lock:
                await self._send_unsent()

    async def _send_unsent(self) -> None:
        """(With the lock held.) Send every decided input's outputs, in decision order."""
        while self._unsent:
            source, ack, routed = self._unsent.popleft()
            await self._send(source, ack, routed)

    def _decide(self, source: Source) -> Routed:
        wire, topic, partition, offset, ts, appended = source
        routed = self.router.route(wire, topic, partition, offset, ts, appended=appended)
        record = routed.record
        if record is not None:  # a repeat (decided before a restart) is no new decision
            metrics.DECISIONS.labels(_family(record), record.decision, record.reason or "").inc()
            metrics.ROUTING_SECONDS.observe(max(0.0, time.time() - ts / 1000))
        return routed

    async def alerts(self) -> int:
        """Check deadlines and write the alerts that fell due (signed now)."""
        await self.ready.wait()
        async with self.deciding:
            routed_all = self.router.overdue(utcnow())
            self._unsent.extend((None, None, routed) for routed in routed_all)
            metrics.OVERDUE_ALERTS.inc(len(routed_all))
            metrics.DEADLINES_OPEN.set(len(self.router.dues))
            metrics.OVERDUE_OPEN.set(len(self.router.overdue_open))
        await self._flush()
        return len(routed_all)

    async def _send(self, source: Source | None, ack: Ack | None, routed: Routed) -> None:
        assert self._producer is not None
        futures: list[Any] = []
        try:
            if not self._open and routed.outputs:
                await self._producer.begin_transaction()
                self._open = True
            for out in routed.outputs:
                if self._broken is not None:  # nothing may overtake an output that failed
                    raise self._broken
                headers = (
                    HEADERS
                    if out.registry_version is None
                    else [*HEADERS, registry_header(out.registry_version)]
                )
                futures.append(await self._producer.send(out.topic, out.value, key=out.key, headers=headers))
        except Exception as exc:  # a send refused at once fails like a late failure
            self._broken = exc
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            futures.append(failed)
        self._pending.append((source, ack, futures))
        self._wake.set()

    async def _commit_in_order(self) -> None:
        """The committing task: never dies while the worker runs."""
        while True:
            try:
                await self._commit_next()
            except Exception:  # contained: log, breathe, carry on with the same inputs
                log.exception("committing failed; retrying")
                await asyncio.sleep(1.0)

    async def _commit_next(self) -> None:
        """Commit the open transaction once its sends are confirmed, then acknowledge its
        inputs in order; a failure routes them all again (``_recover``)."""
        await self._flush()  # never strand a decision: whoever held the producer sent them
        if not self._pending:
            self._wake.clear()
            await self._wake.wait()
            return
        if len(self._pending) < WINDOW:  # let a batch gather: one commit for many inputs
            await asyncio.sleep(COMMIT_EVERY)
        async with self.lock:
            items = list(self._pending)
            error = await self._confirmed([f for _, _, futures in items for f in futures])
            if error is None:
                error = await self._commit()
            if error is None:
                self._pending.clear()
                await self._send_unsent()  # decided during the commit: the next transaction
                self._room.set()
        if error is not None:
            self._broken = self._broken or Exception(repr(error))  # stop sending at once
            async with self.deciding, self.lock:  # nothing is decided while memory is rebuilt
                await self._recover(error)
            return
        for _, ack, _ in items:
            if ack is not None:
                await ack()

    async def _commit(self) -> BaseException | None:
        """Commit the open transaction (if one began); the failure, if any."""
        assert self._producer is not None
        if not self._open:
            return None
        committed = asyncio.ensure_future(self._producer.commit_transaction())
        error = await self._settled([committed], COMMITTED_WITHIN, "commit")
        if error is not None:  # fenced too: ``_recover`` tells a takeover from a timeout
            committed.cancel()
            return error
        self._open = False
        return None

    async def _confirmed(self, futures: list[Any]) -> BaseException | None:
        """Wait (bounded) until the broker confirmed every send; the first failure, or None."""
        return await self._settled(futures, SENT_WITHIN, "sends")

    async def _settled(self, futures: list[Any], within: float, what: str) -> BaseException | None:
        """Wait until every future settled, the producer's sender stopped, or ``within``
        seconds passed; the first failure, or None."""
        for future in futures:  # a failure is read here, or logged by asyncio as never read
            future.add_done_callback(_failure)
        if futures:
            every = _all_settled(futures)
            down: asyncio.Future[Any] = asyncio.ensure_future(self._sender_down.wait())
            try:
                await asyncio.wait([every, down], timeout=within, return_when=asyncio.FIRST_COMPLETED)
            finally:
                down.cancel()
            if not every.done():
                if self._sender_down.is_set():
                    return self._sender_error
                waiting = sum(not f.done() for f in futures)
                return TimeoutError(f"{waiting} {what} not confirmed within {within:g} s")
        for error in map(_failure, futures):
            if error is not None:
                return error
        return None

    async def _recover(self, error: BaseException) -> None:
        """A write failed: nothing after it is acknowledged; route it all again, what was
        sent and what was decided but not sent yet. Called with both locks held."""
        if isinstance(error, ProducerFenced):
            # by another router that took over (stop, routing nothing more), or by the broker,
            # which aborts a transaction left open past its timeout (a long partition outage, a
            # paused process) and bumps the epoch the same way: the lease tells them apart
            await self._lease_confirmed(fenced, FENCED_ANSWER_WITHIN)
            log.warning(
                "transaction aborted by the broker (open past its timeout); "
                "this worker still holds the lease: routing again"
            )
        # the new producer is started only once the lease group confirms the lease anew
        self.recoveries += 1
        metrics.PRODUCE_ERRORS.labels("worker").inc()
        log.error("write failed; routing stopped until it is written", error=repr(error)[:300])
        items = [*self._pending, *self._unsent]  # in decision order
        assert self._producer is not None
        self._retired.add(self._producer)
        await _stopped(self._producer)
        # the new producer aborts the old one's transaction before the log is read again
        self._producer = await self._new_producer()
        self.router, _ = await self._rebuilt(patient=True)
        self._broken = None
        self._pending.clear()  # only now: a failure above leaves them for the next try
        self._unsent.clear()
        repeats = self.router.counts["repeats"]
        for source, ack, _ in items:
            if source is None:
                continue  # an alert: in the log with its deliveries, or raised by the next scan
            await self._send(source, ack, self._decide(source))
        log.info(
            "recovered: inputs routed again",
            inputs=len(items),
            already_decided=self.router.counts["repeats"] - repeats,
        )


def _failure(future: asyncio.Future[Any]) -> BaseException | None:
    """What a settled send failed with (a cancelled send failed too), or None."""
    if future.cancelled():
        return asyncio.CancelledError("send cancelled")
    return future.exception()


def _all_settled(futures: list[Any]) -> asyncio.Future[Any]:
    """A future done once every one of ``futures`` is (never cancelling them, unlike
    ``gather``: they are the producer's)."""
    settled: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    left = len(futures)

    def one(_: Any) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not settled.done():
            settled.set_result(None)

    for future in futures:
        future.add_done_callback(one)
    return settled


async def _stopped(producer: AIOKafkaProducer) -> None:
    """Stop a producer that may be broken (bounded; a failure to stop is logged)."""
    try:
        await asyncio.wait_for(producer.stop(), 10.0)
    except Exception as exc:
        log.warning("producer not stopped cleanly", error=repr(exc)[:200])


class TableManager(faust.tables.TableManager):
    """faust's table manager without its start-up pause: faust sleeps 1 s before recovery
    "to let tables register", every time a worker starts; the router declares no table (its
    memory is rebuilt from the audit log), so nothing can register and the pause only
    delays the first routed event after a start or a crash."""

    async def on_start(self) -> None:
        if len(self):  # a table was declared after all: give it faust's pause
            await super().on_start()
        elif not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def _family(record: AuditRecord) -> str:
    """The catalog family a decision was about, for the metrics: ``unknown`` for anything
    else, so a sender cannot mint label values (and time series) at will."""
    event_type = (record.event or {}).get("type")
    try:
        return spec_of(event_type).family if isinstance(event_type, str) else "unknown"
    except ContractError:
        return "unknown"


def build_worker(
    settings: Settings,
    leads: Callable[[], Awaitable[bool | None]] = _always,
    memory: Memory | None = None,
) -> faust.App:
    """The faust app with the router agent and the deadline timer, ready to run (once this
    worker leads: ``leads`` says whether it still does; ``memory``: what it read as a standby)."""
    registry = keystore.load_registry(settings.keystore_dir)  # the genesis: the log derives the rest
    writer = OrderedWriter(settings, registry, leads, memory)
    members = in_force(settings, registry).agency_ids  # members admitted since the genesis too
    if settings.worker_instance_id is None:
        # static membership gives a restarted worker its old partitions back without a new
        # assignment; a worker that reads a new outbox (an admitted member) must be assigned anew
        reads = hashlib.sha256(",".join(sorted(members)).encode()).hexdigest()[:8]
        instance = f"{socket.gethostname()}-{APP_ID}-{reads}"
        settings = settings.model_copy(update={"worker_instance_id": instance})
    app = make_app(settings, APP_ID, ROUTER)
    app.conf.TableManager = TableManager  # type: ignore[assignment]  # before app.tables exists
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    outboxes = app.topic(*[outbox(a) for a in sorted(members)], **raw)

    @app.task  # type: ignore[untyped-decorator]
    async def start_writer() -> None:
        await writer.start()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types it as a union mypy cannot match
    async def stop_writer(sender: Any, **_: Any) -> None:
        await writer.stop()

    @app.agent(outboxes, concurrency=1, name="router")
    async def route(stream: faust.StreamT[bytes]) -> None:
        manual: Any = stream.noack()  # type: ignore[attr-defined]  # acks are ours (writer)
        async for event in manual.events():
            msg = event.message

            async def ack(event: Any = event) -> None:
                await manual.ack(event)

            appended = msg.timestamp_type == LOG_APPEND_TIME
            source = (
                event.value,
                msg.topic,
                msg.partition,
                msg.offset,
                round(msg.timestamp * 1000),
                appended,
            )
            await writer.route(source, ack)

    @app.timer(interval=settings.deadline_scan_seconds)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        try:
            await writer.alerts()
        except Exception:  # contained: the next tick tries again
            log.exception("deadline scan failed")

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def lag() -> None:
        """Each assigned outbox partition's records not yet decided (for the metrics)."""
        try:
            consumer: Any = app.consumer
            for tp in consumer.assignment():
                if not tp.topic.startswith("jointbus.outbox."):
                    continue
                high = consumer.highwater(tp)
                if high is not None:  # the ledger's heads are rebuilt from the log at start
                    done = writer.router.ledger.heads.get(f"{tp.topic}:{tp.partition}", -1) + 1
                    metrics.OUTBOX_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - done))
        except Exception:  # a metric must never stop the worker
            log.debug("lag not measured", exc_info=True)

    return app


class Worker(faust.Worker):
    """faust's worker, keeping chatty libraries at INFO: mode sets the root logger to DEBUG,
    and aiokafka's per-record debug calls then cost more than routing an event."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for name in ("aiokafka", "faust", "mode", "asyncio", "kafka"):
            logging.getLogger(name).setLevel(max(level, logging.INFO))
        adopt_stdlib_handlers()  # faust's handlers: our format, not theirs


async def stand_by(memory: Memory, lease: Lease, settings: Settings) -> None:
    """Until this worker holds the lease, keep ``memory`` caught up with the audit log."""
    following = asyncio.create_task(
        memory.follow(settings.bootstrap_servers, **kafka_kwargs(settings, ROUTER))
    )
    try:
        while not await asyncio.to_thread(lease.acquired.wait, 1.0):  # bounded: Ctrl-C ends it
            pass
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    log.info("router lease held: taking over", leaves_read_while_standing_by=memory.router.leaves)


def wait_for_kafka(settings: Settings) -> None:
    """Block until the cluster answers the router's metadata requests: a worker started
    while the broker is away waits for it instead of exiting."""
    kafka = kafka_kwargs(settings, ROUTER)
    waited = 0
    while not asyncio.run(probe(settings.bootstrap_servers, **kafka)):
        if waited % 10 == 0:
            log.warning(
                "Kafka not answering (or refusing these credentials); waiting",
                bootstrap=settings.bootstrap_servers,
                waited_seconds=waited,
            )
        time.sleep(1.0)
        waited += 1


def in_force(settings: Settings, genesis: Registry) -> Registry:
    """The registry version in force, followed from ``genesis`` through ``jointbus.registry``:
    whose outboxes a starting worker reads (a member admitted by the agencies included)."""
    return asyncio.run(follow(genesis, settings.bootstrap_servers, **kafka_kwargs(settings, ROUTER)))


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM: stand by until it holds the
    router lease, then route until it stops (and hand the lease over) or loses it (exit)."""
    wait_for_kafka(settings)
    metrics.serve(settings.metrics_port, "worker", settings.metrics_host)
    lease = Lease(
        settings.bootstrap_servers,
        AUDIT_TOPIC,
        LEASE_GROUP,
        lease_lost,
        name=settings.worker_instance_id or f"{socket.gethostname()}-{os.getpid()}",
        **kafka_kwargs(settings, ROUTER),
    )
    lease.start()
    memory = Memory(new_router(settings, keystore.load_registry(settings.keystore_dir)))
    asyncio.run(stand_by(memory, lease, settings))  # SIGTERM ends a standby as any process
    metrics.ROUTER_LEADS.set(1)
    # built only now: a standby that takes over reads the outboxes of the members in force now
    app = build_worker(settings, lease.confirmed, memory)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        lease.release()
