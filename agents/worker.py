"""The bus worker: the router agent and the deadline monitor, as faust agents.

faust consumes the outboxes (group membership, partition assignment, offset commits); the
router's memory is rebuilt from the audit log at start (``Router.fold``), not kept in a
changelog, so what the router remembers is exactly what the log holds.

Writes are ordered and checked (``OrderedWriter``): an input is acknowledged to faust, and
so its offset committed, only once every output it produced is on the broker. If a write
fails, routing stops, the producer is replaced, the memory is rebuilt from what the log
really holds, and every unacknowledged input is routed again, in order, until written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import faust
import faust.tables
import structlog
from aiokafka import AIOKafkaProducer

from jointbus.agents.routing import HEADERS, Routed, Router, outputs_of
from jointbus.schemas.catalog import spec_of
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER, Registry
from jointbus.streams import keystore, metrics
from jointbus.streams.broker import probe
from jointbus.streams.errors import KafkaAuthenticationError, KafkaAuthorizationError, KafkaProtocolError
from jointbus.streams.faustapp import make_app
from jointbus.streams.reader import read_topic
from jointbus.streams.registry_feed import follow
from jointbus.streams.security import kafka_kwargs
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, outbox, registry_header

log = structlog.get_logger("jointbus.worker")
APP_ID = "jointbus-router"
#: inputs whose outputs may be in flight at once (beyond it, routing waits for the broker)
WINDOW = 2000


def new_router(settings: Settings, registry: Registry) -> Router:
    """A router with the settings' rules and the router's keys, memory empty."""
    return Router(
        registry,
        keystore.load_keyring(settings.keystore_dir, ROUTER),
        Rules(ack_within=timedelta(seconds=settings.ack_deadline_seconds)),
    )


async def rebuild(router: Router, bootstrap: str, **kafka: Any) -> int:
    """Fold every leaf of the audit log into ``router`` (first record of each position)."""
    seen: set[str] = set()
    leaves = 0
    async for _, key, value in read_topic(bootstrap, AUDIT_TOPIC, **kafka):
        position = (key or b"").decode("utf-8", errors="replace")
        if position in seen:
            continue
        seen.add(position)
        try:
            record = AuditRecord.model_validate_json(value)
        except ValueError:
            log.error("unreadable audit record skipped", position=position[:120])
            continue
        router.fold(record)
        leaves += 1
    return leaves


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

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.kafka = kafka_kwargs(settings, ROUTER)
        self.router = new_router(settings, registry)
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        # (input to route again, its ack, the futures of its outputs), in input order
        self._pending: deque[tuple[Source | None, Ack | None, list[Any]]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._broken: Exception | None = None  # a send of this producer failed at once
        self._acker: asyncio.Task[None] | None = None
        self.recoveries = 0

    async def start(self) -> None:
        """Rebuild the memory from the audit log and open the producer."""
        async with self.lock:
            self.router, leaves = await self._rebuilt()
            self._producer = await self._new_producer()
            self._acker = asyncio.create_task(self._ack_in_order())
            await self._resend_recent_alerts()
        log.info("router memory rebuilt from the audit log", leaves=leaves)
        self.ready.set()

    async def stop(self) -> None:
        if self._acker is not None:
            self._acker.cancel()
        if self._producer is not None:
            await self._producer.stop()

    async def _rebuilt(self, *, patient: bool = False) -> tuple[Router, int]:
        """A router whose memory is the audit log's (retried until the log is readable).

        A refused login or ACL stops a starting worker at once (waiting will not mend it);
        a running one (``patient``) keeps retrying, loudly, until an operator mends it.
        """
        while True:
            router = new_router(self.settings, self.registry)
            try:
                return router, await rebuild(router, self.settings.bootstrap_servers, **self.kafka)
            except (KafkaAuthenticationError, KafkaAuthorizationError, KafkaProtocolError) as exc:
                log.critical("the router may not read the audit log", reason=exc.reason, detail=exc.message)
                if not patient:
                    raise
                await asyncio.sleep(5.0)
            except Exception as exc:  # broker away: the log is the truth, wait for it
                log.warning("audit log not readable yet; retrying", error=repr(exc)[:200])
                await asyncio.sleep(1.0)

    async def _new_producer(self) -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
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
                return producer
            except Exception as exc:  # broker away: keep trying, nothing moves meanwhile
                log.warning("producer not started; retrying", error=repr(exc)[:200])
                await producer.stop()
                await asyncio.sleep(1.0)

    async def route(self, source: Source, ack: Ack) -> None:
        """Decide one outbox record and send its outputs; ``ack`` runs once they are written."""
        await self.ready.wait()
        while len(self._pending) >= WINDOW:
            self._room.clear()
            await self._room.wait()
        async with self.lock:
            await self._send(source, ack, self._decide(source))

    def _decide(self, source: Source) -> Routed:
        wire, topic, partition, offset, ts, appended = source
        routed = self.router.route(wire, topic, partition, offset, ts, appended=appended)
        record = routed.record
        if record is not None and not routed.again:
            metrics.DECISIONS.labels(_family(record), record.decision, record.reason or "").inc()
            metrics.ROUTING_SECONDS.observe(max(0.0, time.time() - ts / 1000))
        return routed

    async def alerts(self) -> int:
        """Check deadlines and write the alerts that fell due (signed now)."""
        await self.ready.wait()
        async with self.lock:
            now = utcnow()
            routed_all = self.router.overdue(now)
            for routed in routed_all:
                await self._send(None, None, routed)
            metrics.OVERDUE_ALERTS.inc(len(routed_all))
            metrics.DEADLINES_OPEN.set(len(self.router.dues))
            metrics.OVERDUE_OPEN.set(len(self.router.overdue_open))
        return len(routed_all)

    async def _send(self, source: Source | None, ack: Ack | None, routed: Routed) -> None:
        assert self._producer is not None
        futures: list[Any] = []
        try:
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
            metrics.PRODUCE_ERRORS.labels("worker").inc()
            self._broken = exc
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            futures.append(failed)
        self._pending.append((source, ack, futures))
        self._wake.set()

    async def _ack_in_order(self) -> None:
        """The acknowledging task: never dies while the worker runs."""
        while True:
            try:
                await self._ack_next()
            except Exception:  # contained: log, breathe, carry on with the same head
                log.exception("acknowledging failed; retrying")
                await asyncio.sleep(1.0)

    async def _ack_next(self) -> None:
        if not self._pending:
            self._wake.clear()
            await self._wake.wait()
            return
        _, ack, futures = self._pending[0]
        if not all(f.done() for f in futures):
            await asyncio.wait(futures)
        errors = [e for e in map(_failure, futures) if e is not None]
        if errors:
            self._broken = self._broken or Exception(repr(errors[0]))  # stop sending at once
            await self._recover(errors[0])
            return
        self._pending.popleft()
        if len(self._pending) < WINDOW:
            self._room.set()
        if ack is not None:
            await ack()

    async def _recover(self, error: BaseException) -> None:
        """A write failed: nothing after it is acknowledged; route it all again."""
        async with self.lock:
            self.recoveries += 1
            log.error("write failed; routing stopped until it is written", error=repr(error)[:300])
            items = list(self._pending)
            for _, _, futures in items:  # let every send of the old producer settle
                await asyncio.gather(*futures, return_exceptions=True)
            assert self._producer is not None
            await self._producer.stop()
            self.router, _ = await self._rebuilt(patient=True)
            self._producer = await self._new_producer()
            self._broken = None
            self._pending.clear()  # only now: a failure above leaves them for the next try
            await self._resend_recent_alerts()
            for source, ack, _ in items:
                if source is None:
                    continue  # alerts: the log's are sent again above, the next scan raises the rest
                await self._send(source, ack, self._decide(source))
            log.info("recovered: inputs routed again", inputs=len(items))

    async def _resend_recent_alerts(self) -> None:
        """Write again the deliveries of the alerts the log holds most recently: an alert's
        audit record can reach the log while an inbox copy did not (another partition, or a
        crash between the two); recipients drop the copies they already have by id."""
        for record in self.router.recent_alerts:
            await self._send(None, None, Routed(record, outputs_of(record)[:-1]))
        if self.router.versions:  # and every registry version: one may not have been written
            await self._send(None, None, Routed(None, list(self.router.versions.values())))


def _failure(future: asyncio.Future[Any]) -> BaseException | None:
    """What a settled send failed with (a cancelled send failed too), or None."""
    if future.cancelled():
        return asyncio.CancelledError("send cancelled")
    return future.exception()


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


def build_worker(settings: Settings) -> faust.App:
    """The faust app with the router agent and the deadline timer, ready to run."""
    registry = keystore.load_registry(settings.keystore_dir)  # the genesis: the log derives the rest
    writer = OrderedWriter(settings, registry)
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
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    wait_for_kafka(settings)
    metrics.serve(settings.metrics_port, "worker", settings.metrics_host)
    app = build_worker(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
