"""The embedded broker: real produce/consume, restarts that keep data, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from jointbus.streams.broker import LocalBroker, fetch_jars, find_java, free_port
from jointbus.streams.errors import BrokerError
from jointbus.streams.topics import AUDIT_TOPIC, inbox

pytestmark = pytest.mark.broker


async def _round_trip(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for v in values:
            await producer.send(topic, v, key=b"k")
        await producer.flush()
    finally:
        await producer.stop()
    return await _read_all(bootstrap, topic, len(values))


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"t-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        while len(got) < expected:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            for records in batch.values():
                got += [r.value for r in records]
    finally:
        await consumer.stop()
    return got


async def test_produce_consume_round_trip_on_real_broker(bootstrap: str) -> None:
    """What is produced with acks=all is consumed back, in order within a key (on a topic of
    this test's own: the session broker's inboxes also carry other modules' routed events,
    in whatever order pytest-xdist runs the modules)."""
    topic = f"round-trip-{uuid.uuid4()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    values = [f"m{i}".encode() for i in range(50)]
    assert await _round_trip(bootstrap, topic, values) == values


async def test_topics_have_the_design_layout(bootstrap: str) -> None:
    """The audit topic has one partition and infinite retention; inboxes exist per agency."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([AUDIT_TOPIC, inbox("cq-dazu")])
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        assert partitions == {AUDIT_TOPIC: 1, inbox("cq-dazu"): 3}
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, AUDIT_TOPIC)])
        entries = {c[0]: c[1] for c in configs[0].resources[0][4]}
        assert entries["retention.ms"] == "-1"
        assert entries["retention.bytes"] == "-1"
    finally:
        await admin.close()


def test_broker_restart_keeps_what_was_written(tmp_path: Path) -> None:
    """Stop and start the broker: what was written before is read back after."""
    import asyncio

    broker = LocalBroker(tmp_path / "b", free_port(), heap="256m")
    broker.start()
    try:
        from aiokafka.admin import NewTopic

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            await admin.create_topics([NewTopic("kept", 1, 1)])
            await admin.close()

        asyncio.run(create())
        before = [f"before-restart-{i}".encode() for i in range(20)]
        assert asyncio.run(_round_trip(broker.bootstrap, "kept", before)) == before
        assert broker.stop() is True
        assert broker.status()[0] is False
        broker.start()
        assert broker.status()[0] is True
        assert asyncio.run(_read_all(broker.bootstrap, "kept", 20)) == before
    finally:
        broker.stop()


def test_second_start_on_a_taken_port_fails_with_one_line(kafka: LocalBroker, tmp_path: Path) -> None:
    """A port already in use is refused with a one-line error, not a traceback."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jointbus",
            "broker",
            "start",
            "--port",
            str(kafka.port),
            "--data-dir",
            str(tmp_path / "other"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JOINTBUS_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert "already in use" in lines[0]
    assert "[port_taken]" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_status_reports_serving_broker(kafka: LocalBroker) -> None:
    """`jointbus broker status` says 'serving' and exits 0 for a running broker."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jointbus",
            "broker",
            "status",
            "--port",
            str(kafka.port),
            "--data-dir",
            str(kafka.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"serving at 127.0.0.1:{kafka.port}" in done.stdout


def test_stop_naming_another_port_refuses_and_the_broker_keeps_serving(kafka: LocalBroker) -> None:
    """`--port` names a broker, the data directory picks one: when the broker running from
    the directory serves another port, `broker stop` refuses in one line (a typed reason)
    instead of stopping a broker the operator did not mean."""
    other = str(free_port())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jointbus",
            "--port",
            other,
            "broker",
            "stop",
            "--data-dir",
            str(kafka.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"serves port {kafka.port}, not {other}" in done.stderr
    assert "[other_broker]" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    serving, _ = kafka.status()
    assert serving, "the broker was stopped although another port was named"
    # an exported JOINTBUS_BROKER_PORT (say, the demo's) does not name a port when
    # --data-dir says which broker is meant
    status = subprocess.run(
        [sys.executable, "-m", "jointbus", "broker", "status", "--data-dir", str(kafka.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JOINTBUS_BROKER_PORT": other},
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"serving at 127.0.0.1:{kafka.port}" in status.stdout


def test_status_of_a_stopped_broker_exits_1(tmp_path: Path) -> None:
    """No broker in a data directory: status says so and exits 1."""
    done = subprocess.run(
        [sys.executable, "-m", "jointbus", "broker", "status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "not running" in done.stdout


def test_missing_java_is_refused_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Java the broker refuses with reason java_missing."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(BrokerError) as info:
        find_java()
    assert info.value.reason == "java_missing"


def test_missing_maven_is_refused_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no cached jars and no mvn on PATH, fetching refuses with reason maven_missing."""
    monkeypatch.setenv("JOINTBUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError) as info:
        fetch_jars()
    assert info.value.reason == "maven_missing"
