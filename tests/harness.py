"""Helpers for integration tests: a federation on disk, a real worker process, inbox reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from jointbus.audit.completeness import check_complete, outbox_records
from jointbus.audit.verifier import Report, Verifier
from jointbus.processes import JointbusProcess
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_federation, revoke, rotate
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Delivery, Publisher, Subscriber
from jointbus.streams.topics import AUDIT_TOPIC, outbox

T = TypeVar("T")

REVOKED = "cq-dazu#sig-1"


#: obligations one agency may hold open on another on the test buses: they carry thousands
#: of events between a few pairs (the session's tests add up, load tests send 2,000 at once),
#: so the limit is far off; tests/test_flood_limits.py holds the bus's default of 200
LOAD_OPEN_PER_PAIR = 100_000


def make_federation(
    home: Path, open_per_pair: int | None = LOAD_OPEN_PER_PAIR
) -> tuple[Registry, dict[str, Keyring]]:
    """A federation in ``home/keys`` where cq-dazu's first signing key is revoked."""
    start = utcnow() - timedelta(days=10)
    registry, rings = new_federation(start, open_per_pair=open_per_pair)
    stolen = rings["cq-dazu"]
    registry, rings["cq-dazu"] = rotate(
        registry, stolen, "sign", start + timedelta(days=1), overlap=timedelta(days=30)
    )
    registry = revoke(registry, REVOKED, start + timedelta(days=2), "signing laptop stolen")
    rings["cq-dazu-stolen"] = stolen
    directory = home / "keys"
    for owner, ring in rings.items():
        if owner != "cq-dazu-stolen":
            keystore.save_keyring(directory, ring)
    keystore.save_registry(directory, registry)
    return registry, rings


async def collect(
    agency: str,
    ring: Keyring,
    registry: Registry,
    bootstrap: str,
    want: Callable[[Delivery], bool],
    count: int,
    within: float = 60.0,
    *,
    receipts: bool = False,
) -> list[Delivery]:
    """Read ``agency``'s inbox without a group until ``count`` wanted deliveries arrived;
    fails the test (naming what arrived) when ``within`` seconds pass first."""
    found: list[Delivery] = []

    async def handle(delivery: Delivery) -> bool:
        if want(delivery):
            found.append(delivery)
        return len(found) >= count

    sub = Subscriber(agency, ring, registry, bootstrap, group_id=False, receipts=receipts)
    await sub.start()
    try:
        async with asyncio.timeout(within):
            await sub.run(handle)
    except TimeoutError:
        raise AssertionError(
            f"{agency}: {len(found)} of {count} wanted deliveries within {within} s "
            f"({sub.rejected} refused by the Subscriber)"
        ) from None
    finally:
        await sub.stop()
    return found


async def first_deliveries(
    agency: str, ring: Keyring, registry: Registry, bootstrap: str, count: int, within: float
) -> tuple[list[str], int]:
    """The ids the first ``count`` deliveries of ``agency``'s Subscriber handed to the
    application, and how many duplicates it dropped on the way."""
    seen: list[str] = []

    async def handle(delivery: Delivery) -> bool:
        seen.append(delivery.id)
        return len(seen) >= count

    async with Subscriber(agency, ring, registry, bootstrap, group_id=False, receipts=False) as sub:
        async with asyncio.timeout(within):
            await sub.run(handle)
    return seen, sub.duplicates


@contextlib.contextmanager
def explained_by(*processes: JointbusProcess) -> Iterator[None]:
    """A failed assertion inside also tells how each process fared (exit status, its last
    warnings and errors): a test that fails on another machine says why, not only what."""
    try:
        yield
    except (AssertionError, TimeoutError) as exc:
        stories = "\n\n".join(p.story() for p in processes)
        raise AssertionError(f"{str(exc) or type(exc).__name__}\n\n{stories}") from None


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.25
) -> T:
    """The first result of ``probe`` that is not None, polling every ``every`` s; fails the
    test, saying ``what`` was awaited, when ``within`` seconds pass first. The one way a
    test waits for something the bus does in its own time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result is not None:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(every)


async def audit_settled(bootstrap: str, leaves: int, within: float = 60.0) -> None:
    """Wait (bounded) until the audit topic holds ``leaves`` leaves: a recipient can see an
    event before its audit record (another partition) is flushed."""

    async def enough() -> int | None:
        rule = LeafRule()
        count = sum([1 async for _, key, _ in read_topic(bootstrap, AUDIT_TOPIC) if rule.admit(key)])
        return count if count >= leaves else None

    await eventually(enough, within=within, what=f"the audit log holds {leaves} leaves")


async def nothing_more(
    agency: str,
    ring: Keyring,
    registry: Registry,
    bootstrap: str,
    want: Callable[[Delivery], bool],
    settle: float = 1.5,
) -> list[Delivery]:
    """Everything wanted in the inbox now (reads to the end after a settling pause)."""
    await asyncio.sleep(settle)
    found: list[Delivery] = []
    async with Subscriber(
        agency, ring, registry, bootstrap, group_id=False, receipts=False, until_end=True
    ) as sub:
        async for delivery in sub:
            if want(delivery):
                found.append(delivery)
    return found


async def read_outbox(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, int, bool]]:
    """(partition, offset, value, timestamp ms, whether the broker set it) of every record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[tuple[int, int, bytes, int, bool]] = []
        while sum(ends.values()) > len(found):
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                raise AssertionError(f"read {len(found)} of {sum(ends.values())} records of {topic}")
            for tp, records in batch.items():
                found += [
                    (tp.partition, r.offset, r.value, r.timestamp, r.timestamp_type == 1) for r in records
                ]
        return found
    finally:
        await consumer.stop()


def run_jointbus(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``jointbus <args>`` as a user would: a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "jointbus", *args],
        input=stdin,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,  # bounded: subprocess.TimeoutExpired fails the test
        check=False,
    )


async def jointbus_cli(home: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``run_jointbus`` against ``bootstrap`` with ``home`` as its folder, off the event loop."""
    env = {**os.environ, "JOINTBUS_HOME": str(home), "JOINTBUS_BOOTSTRAP": bootstrap}
    return await asyncio.to_thread(run_jointbus, *args, env=env)


def figures_of(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The agency rows and the collaboration line of `status`/`audit replay --json` (JSON lines)."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    rows = [{k: v for k, v in line.items() if k != "kind"} for line in lines if line["kind"] == "agency"]
    (whole,) = [
        {k: v for k, v in line.items() if k != "kind"} for line in lines if line["kind"] == "collaboration"
    ]
    return rows, whole


def play_demo(cwd: Path) -> tuple[dict[str, str], subprocess.CompletedProcess[str]]:
    """`jointbus demo` in ``cwd`` on a broker of its own (home ``cwd/home``, a free port):
    the environment that reaches that bus, and how the demo ended (the broker keeps running)."""
    from jointbus.streams.broker import free_port

    env = {**os.environ, "JOINTBUS_HOME": str(cwd / "home"), "JOINTBUS_BROKER_PORT": str(free_port())}
    env.pop("JOINTBUS_BOOTSTRAP", None)
    played = subprocess.run(
        [sys.executable, "-m", "jointbus", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=cwd,
    )
    return env, played


async def decisions_are_complete(bootstrap: str, registry: Registry, sent: list[str]) -> Report:
    """Each published event decided exactly once (decisions = leaves = published), the log
    verifies, and every outbox record has its decision."""
    await audit_settled(bootstrap, len(sent))
    rule, leaves = LeafRule(), []
    outboxes = await outbox_records(bootstrap, [outbox(a) for a in sorted(registry.agency_ids)])
    verifier = Verifier(registry, [], outboxes=outboxes)  # each decision about what was sent
    async for offset, key, value in read_topic(bootstrap, AUDIT_TOPIC):
        verifier.feed(offset, key, value)
        if rule.admit(key):
            leaves.append(AuditRecord.model_validate_json(value))
    report = verifier.finish()
    decided = [r.event_id for r in leaves if r.decision == "accepted"]
    assert sorted(decided) == sorted(sent), "each decision exactly once in the audit log"
    complete = check_complete(verifier.decided, outboxes, now_ms=int(time.time() * 1000), grace_ms=0)
    assert complete.positions == complete.decided == len(sent)
    return report


async def publish_through_faults(
    bootstrap: str,
    registry: Registry,
    rings: dict[str, Keyring],
    more: Callable[[], bool],
    sent: list[str],
    pause: float,
    on_sent: Callable[[], None] = lambda: None,
    recipients: tuple[str, ...] = ("cq-jiangjin", "sc-neijiang"),
) -> None:
    """sc-yibin publishes rectifications while ``more()`` says so, retrying each through
    broker restarts (bounded: 60 s an event), appending each id to ``sent`` once the broker
    has it."""
    async with Publisher(
        "sc-yibin", rings["sc-yibin"], registry, bootstrap, request_timeout_ms=60_000
    ) as pub:
        i = 0
        while more():
            i += 1
            envelope = pub.build(
                "rectification.issued",
                f"rectification/{uuid.uuid4()}",
                list(recipients),
                {"responsible_unit": f"单位{i}", "problem": "问题", "deadline": "2099-12-31"},
            )
            for attempt in range(120):
                try:
                    await (await pub.send_wire(to_wire(envelope), envelope["subject"]))
                    break
                except KafkaError:
                    if attempt == 119:
                        raise
                    await asyncio.sleep(0.5)
            sent.append(envelope["id"])
            on_sent()
            await asyncio.sleep(pause)
