"""The bus worker: the router agent and the deadline monitor, as faust agents.

The router keeps every aggregate's lifecycle state in a faust table (changelogged, so a
restarted worker resumes where the last one stopped) and calls the pure rules of
``schemas.lifecycle`` through ``agents.routing.Router``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import faust
import structlog

from agents.routing import HEADERS, Routed, Router
from schemas.ids import utcnow
from schemas.lifecycle import Rules, State
from schemas.registry import AGENCY_IDS, ROUTER
from streams import keystore
from streams.faustapp import make_app
from streams.settings import Settings
from streams.topics import AUDIT_TOPIC, inbox, outbox

log = structlog.get_logger("jointbus.worker")
APP_ID = "jointbus-router"


def build_worker(settings: Settings) -> faust.App:
    """The faust app with the router agent and the deadline timer, ready to run."""
    registry = keystore.load_registry(settings.keystore_dir)
    router = Router(
        registry,
        keystore.load_keyring(settings.keystore_dir, ROUTER),
        Rules(ack_within=timedelta(seconds=settings.ack_deadline_seconds)),
    )
    app = make_app(settings, APP_ID, ROUTER)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    outboxes = app.topic(*[outbox(a) for a in registry.agency_ids], **raw)
    for name in [*map(inbox, AGENCY_IDS), AUDIT_TOPIC]:
        app.topic(name, **raw)  # declared, so the app knows its outputs
    aggregates = app.Table(
        "aggregates", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    emitted: set[str] = set()

    def state_of(subject: str) -> State | None:
        value = aggregates.get(subject.encode())
        return None if value is None else json.loads(value)

    async def produce(routed: Routed) -> None:
        # straight to the app's producer (faust flushes it before committing offsets);
        # faust's Topic.send adds a future, sensors and callbacks per record we do not use
        producer = app.producer
        for out in routed.outputs:
            await producer.send(out.topic, out.key, out.value, None, None, HEADERS)

    @app.agent(outboxes, concurrency=1, name="router")
    async def route(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            routed = router.route(
                event.value,
                msg.topic,
                msg.partition,
                msg.offset,
                round(msg.timestamp * 1000),
                state_of,
            )
            if routed.subject is not None and routed.state is not None:
                aggregates[routed.subject.encode()] = json.dumps(routed.state).encode()
            await produce(routed)

    @app.timer(interval=settings.deadline_scan_seconds)  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        now = utcnow()
        for _, value in list(aggregates.items()):
            for routed in router.overdue(json.loads(value), now):
                if routed.record.position in emitted:
                    continue
                emitted.add(routed.record.position)
                log.info(
                    "deadline passed",
                    aggregate=routed.record.position,
                    event_id=routed.record.event_id,
                )
                await produce(routed)

    return app


class Worker(faust.Worker):
    """faust's worker, keeping chatty libraries at INFO: mode sets the root logger to DEBUG,
    and aiokafka's per-record debug calls then cost more than routing an event."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for name in ("aiokafka", "faust", "mode", "asyncio", "kafka"):
            logging.getLogger(name).setLevel(max(level, logging.INFO))


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    app = build_worker(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
