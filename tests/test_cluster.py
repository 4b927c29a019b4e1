"""The bus on a local three-node KRaft cluster (replication 3, min.insync.replicas 2): the
node leading ``jointbus.audit`` and then the node leading an outbox partition are killed
(SIGKILL) mid-stream and come back; every event is decided once, delivered once, and the
audit log verifies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from jointbus.audit.agent import event_id_of
from jointbus.processes import WorkerProcess
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.streams import keystore
from jointbus.streams.cluster import LocalCluster
from jointbus.streams.provision import provision
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Delivery, Publisher
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.harness import LOAD_OPEN_PER_PAIR, collect, eventually, explained_by, jointbus_cli
from tests.samples import SAMPLES
from tests.stats import STATS

pytestmark = pytest.mark.broker

EVENTS = 240
PACE = 40.0  # events per second: the stream lasts six seconds, the faults fall inside it


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three KRaft nodes on loopback, each broker and controller."""
    nodes = LocalCluster(tmp_path_factory.mktemp("cluster"), heap="384m")
    nodes.start()
    yield nodes
    nodes.stop()


async def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))
    finally:
        await admin.close()


async def kill_and_restore(cluster: LocalCluster, topic: str, partition: int) -> int:
    """SIGKILL the node leading ``topic``/``partition``, wait, bring it back; its id."""
    node_id = await leader_of(cluster.bootstrap, topic, partition)
    await asyncio.to_thread(cluster.node(node_id).stop, kill=True)
    await asyncio.sleep(2.0)
    cluster.node(node_id).start(wait=False)
    await asyncio.to_thread(cluster.wait)
    return node_id


async def test_leaders_killed_mid_stream_lose_and_double_nothing(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """Events from sc-zigong to cq-yongchuan at 40/s while the leader of the audit topic,
    then the leader of sc-zigong's outbox partition 0, is SIGKILLed and restarted; the stream
    goes on until both are back and 240 were sent. Every event is accepted once, delivered
    once, and `audit verify` passes over the whole log."""
    registry, rings = new_federation(utcnow() - timedelta(days=1), open_per_pair=LOAD_OPEN_PER_PAIR)
    for ring in rings.values():
        keystore.save_keyring(tmp_path / "keys", ring)
    keystore.save_registry(tmp_path / "keys", registry)
    await provision(Settings(bootstrap=cluster.bootstrap, replication=3), registry)
    worker = WorkerProcess(tmp_path, cluster.bootstrap, JOINTBUS_REPLICATION="3").start()
    sent: list[str] = []
    faults: list[tuple[int, int, int]] = []  # (node, events sent when killed, when back)
    started, restored = asyncio.Event(), asyncio.Event()
    try:
        with explained_by(worker):
            async with Publisher("sc-zigong", rings["sc-zigong"], registry, cluster.bootstrap) as pub:

                async def stream() -> None:
                    loop = asyncio.get_running_loop()
                    begin = loop.time()
                    while len(sent) < EVENTS or not restored.is_set():
                        await asyncio.sleep(max(0.0, begin + len(sent) / PACE - loop.time()))
                        sent.append(
                            await pub.publish(
                                "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-yongchuan"],
                                SAMPLES["rectification.issued"],
                            )
                        )  # fmt: skip
                        if len(sent) == EVENTS // 5:
                            started.set()

                async def kill_leaders() -> None:
                    await started.wait()
                    for topic in (AUDIT_TOPIC, outbox("sc-zigong")):
                        before = len(sent)
                        node = await kill_and_restore(cluster, topic, 0)
                        faults.append((node, before, len(sent)))
                    restored.set()

                await asyncio.gather(stream(), kill_leaders())
            total = len(sent)
            assert len(set(sent)) == total >= EVENTS
            assert all(0 < killed <= back < total for _, killed, back in faults), faults  # mid-stream
            STATS["cluster test: events through two leader kills"] = total
            for (node, killed, back), what in zip(faults, ("audit leader", "outbox leader"), strict=True):
                STATS[f"cluster test: {what} node {node} killed at event"] = f"{killed}, back by event {back}"
            wanted = set(sent)

            def ours(delivery: Delivery) -> bool:
                return delivery.id in wanted

            ring = rings["cq-yongchuan"]
            got = await collect("cq-yongchuan", ring, registry, cluster.bootstrap, ours, total, 120)
            assert sorted(d.id for d in got) == sorted(wanted)  # each once: no loss, no double

            async def decided() -> list[str] | None:
                ids = [event_id_of(v) async for _, _, v in read_topic(cluster.bootstrap, AUDIT_TOPIC)]
                found = [i for i in ids if i in wanted]
                return found if len(set(found)) == total else None

            await eventually(decided, within=60, what="a decision for every event in the audit log")
    finally:
        worker.stop()
    verified = await jointbus_cli(tmp_path, cluster.bootstrap, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "decided exactly once" in verified.stdout
    status = await jointbus_cli(
        tmp_path, cluster.bootstrap, "broker", "status", "--data-dir", str(cluster.data_dir)
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("yes") == 3  # every node back and serving
