"""Two router workers on one cluster: one leads, the other stands by and takes over.

Each test has a broker of its own, so the audit log it verifies at the end holds only its
own history. Publishing goes on throughout; afterwards every event is delivered once to
each recipient, decided once (decisions = leaves = published), and the log verifies.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from jointbus.agents.worker import EXIT_FENCED, EXIT_LEASE_LOST
from jointbus.audit.verifier import Report
from jointbus.processes import StandbyWorkerProcess, WorkerProcess
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams.broker import LocalBroker
from tests.conftest import _broker
from tests.harness import (
    decisions_are_complete,
    eventually,
    explained_by,
    first_deliveries,
    jointbus_cli,
    make_federation,
    publish_through_faults,
)
from tests.stats import STATS

pytestmark = pytest.mark.broker
TOTAL = 900
RECIPIENTS = ("cq-jiangjin", "sc-neijiang")
#: bound on a takeover: the lease's session (6 s) and the dead leader's faust session (8 s)
TAKEOVER_WITHIN = 60.0


@pytest.fixture
def failover_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    yield from _broker(tmp_path_factory, "failover-kafka")


def pair(home: Path, bootstrap: str) -> tuple[WorkerProcess, WorkerProcess]:
    """Worker a, started first (it leads), and worker b, standing by: two homes, one keystore."""
    keys = str(home / "keys")
    (home / "a").mkdir()
    (home / "b").mkdir()
    a = WorkerProcess(home / "a", bootstrap, JOINTBUS_KEYSTORE=keys, JOINTBUS_WORKER_INSTANCE_ID="worker-a")
    b = StandbyWorkerProcess(
        home / "b", bootstrap, JOINTBUS_KEYSTORE=keys, JOINTBUS_WORKER_INSTANCE_ID="worker-b"
    )
    return a.start(), b.start()


async def routes(worker: WorkerProcess, what: str) -> float:
    """Seconds until ``worker`` leads and routes (bounded: fails loudly)."""
    started = time.monotonic()

    async def ready() -> bool | None:
        assert worker.proc is not None
        assert worker.proc.poll() is None, f"{what} exited; see {worker.log}"
        return True if "Worker]: Ready" in worker.log.read_text(errors="replace") else None

    await eventually(ready, within=TAKEOVER_WITHIN, what=f"{what} leads and routes", every=0.1)
    return time.monotonic() - started


def roles(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each worker's role (the first word) in the table `jointbus workers` prints."""
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃|").split("│")]
        if len(cells) == 3 and cells[0].startswith("worker-"):
            found[cells[0]] = cells[2].split()[0]
    return found


def takeover_reads(worker: WorkerProcess) -> tuple[int, int]:
    """(leaves ``worker`` had read while standing by, leaves it read when it took over),
    from its log."""
    warm = read = -1
    for line in worker.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            warm = entry.get("leaves_read_while_standing_by", warm)
            read = entry.get("read_at_start", read)
    assert min(warm, read) >= 0, f"no takeover logged; see {worker.log}"
    return warm, read


async def all_delivered_once(
    bootstrap: str, registry: Registry, rings: dict[str, Keyring], sent: list[str]
) -> None:
    for agency in RECIPIENTS:
        seen, dropped = await first_deliveries(agency, rings[agency], registry, bootstrap, len(sent), 240)
        assert len(seen) == len(set(seen)) == len(sent), f"{agency} saw {len(seen)} of {len(sent)}"
        assert set(seen) == set(sent), f"{agency} lost {len(set(sent) - set(seen))}"
        STATS[f"failover: duplicates dropped by {agency}'s Subscriber"] = dropped


async def test_standby_takes_over_when_the_leader_is_sigkilled(
    failover_kafka: LocalBroker, tmp_path: Path
) -> None:
    """The leader is SIGKILLed a third of the way through a stream; the standby takes the
    lease, fences the dead leader's producer, rebuilds from the log and routes the rest."""
    bootstrap = failover_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    a, b = pair(tmp_path, bootstrap)
    assert "lease acquired" in a.log.read_text()
    assert "Worker]: Ready" not in b.log.read_text(), "the standby routes while the leader lives"
    assert roles(await jointbus_cli(tmp_path, bootstrap, "workers")) == {
        "worker-a": "leads",
        "worker-b": "standing",
    }
    killed = asyncio.Event()

    async def kill_a(sent: list[str]) -> None:
        await eventually(lambda: _at(sent, TOTAL // 3), within=120, what="a third published")
        a.kill()
        killed.set()
        STATS["failover: seconds from SIGKILL to the standby routing"] = round(await routes(b, "worker b"), 1)

    try:
        with explained_by(a, b):
            report = await stream_through(bootstrap, registry, rings, TOTAL, kill_a)
            assert killed.is_set()
            STATS["failover: audit records repeated after the takeover (not leaves)"] = report.repeats
            done = await jointbus_cli(tmp_path, bootstrap, "workers")
            assert roles(done) == {"worker-b": "leads"}, done.stdout  # a's session has expired
            warm, read = takeover_reads(b)
            assert warm > 0, "the standby followed the log while it stood by"
            assert read < warm, "at takeover the standby read only the tail of the log"
            STATS["failover: leaves the standby had read before it took over / read at takeover"] = (
                f"{warm} / {read}"
            )
    finally:
        a.stop()
        b.stop()


async def test_leader_stopped_with_sigterm_hands_over_and_loses_nothing(
    failover_kafka: LocalBroker, tmp_path: Path
) -> None:
    """An operator stops the leader (SIGTERM, a rolling upgrade) mid-stream: it stops
    routing, leaves the lease group, and the standby takes over and routes the rest."""
    bootstrap = failover_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    a, b = pair(tmp_path, bootstrap)
    total = TOTAL // 2

    async def stop_a(sent: list[str]) -> None:
        await eventually(lambda: _at(sent, total // 3), within=120, what="a third published")
        await asyncio.to_thread(a.stop)
        assert a.proc is not None
        assert a.proc.returncode == 0, f"the leader did not stop cleanly; see {a.log}"
        STATS["failover: seconds from SIGTERM of the leader to the standby routing"] = round(
            await routes(b, "worker b"), 1
        )

    try:
        with explained_by(a, b):
            await stream_through(bootstrap, registry, rings, total, stop_a)
    finally:
        a.stop()
        b.stop()


async def test_stalled_leader_is_fenced_and_its_late_writes_are_refused(
    failover_kafka: LocalBroker, tmp_path: Path
) -> None:
    """A zombie router: the leader is frozen (SIGSTOP) mid-stream, the standby takes over
    once the lease expires, then the old leader is thawed (SIGCONT) with outputs it never
    committed. Its producer is fenced: it writes nothing more and exits; nothing it had in
    flight reaches a committed reader, and the log verifies."""
    bootstrap = failover_kafka.bootstrap
    registry, rings = make_federation(tmp_path)
    a, b = pair(tmp_path, bootstrap)

    async def freeze_a(sent: list[str]) -> None:
        await eventually(lambda: _at(sent, TOTAL // 4), within=120, what="a quarter published")
        a.signal(signal.SIGSTOP)
        await routes(b, "worker b")
        frozen_at = len(sent)
        await eventually(lambda: _at(sent, frozen_at + 100), within=120, what="100 more published")
        a.signal(signal.SIGCONT)
        assert a.proc is not None

        async def exited() -> int | None:
            return a.proc.poll() if a.proc is not None else None

        status = await eventually(exited, within=60, what="the thawed leader stops", every=0.1)
        assert status in (EXIT_FENCED, EXIT_LEASE_LOST), f"exit status {status}; see {a.log}"
        text = a.log.read_text(errors="replace")
        assert "fenced: another router" in text or "lease lost: another" in text
        # the thawed leader never took the fence for its own timeout, so never fenced b back
        assert "routing again" not in text
        assert "write failed" not in b.log.read_text(errors="replace"), "the new leader was fenced"
        STATS["failover: the thawed leader stopped because"] = (
            "fenced" if status == EXIT_FENCED else "lease lost"
        )

    try:
        with explained_by(a, b):
            await stream_through(bootstrap, registry, rings, TOTAL, freeze_a)
    finally:
        if a.proc is not None and a.proc.poll() is None:
            a.signal(signal.SIGCONT)  # a frozen process ignores SIGTERM
        a.stop()
        b.stop()


async def stream_through(
    bootstrap: str,
    registry: Registry,
    rings: dict[str, Keyring],
    total: int,
    fault: Callable[[list[str]], Awaitable[None]],
) -> Report:
    """sc-yibin publishes ``total`` events while ``fault`` (given the ids sent so far) does
    its harm; then each recipient saw each event once, each was decided once (decisions =
    leaves = published) and the log verifies."""
    sent: list[str] = []
    await asyncio.gather(
        publish_through_faults(
            bootstrap, registry, rings, lambda: len(sent) < total, sent, 0.02, recipients=RECIPIENTS
        ),
        fault(sent),
    )
    await all_delivered_once(bootstrap, registry, rings, sent)
    report = await decisions_are_complete(bootstrap, registry, sent)
    assert report.leaves == total
    return report


async def _at(sent: list[str], count: int) -> bool | None:
    return True if len(sent) >= count else None
