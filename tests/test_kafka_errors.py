"""Kafka failures reach people and programs as what they are, on a secured broker: a refused
password is never "try again", a forbidden topic read by assignment fails at once instead of
hanging, a refused record does not poison the SDK's producer, and a PLAINTEXT client on the
SASL port hears why within seconds. Each test is named after the failure it stops."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from jointbus.schemas.envelope import MAX_ENVELOPE_BYTES, to_wire
from jointbus.schemas.errors import Reason, SchemaError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.streams.broker import LocalBroker
from jointbus.streams.clients import readable_partitions
from jointbus.streams.errors import KafkaAuthenticationError, KafkaAuthorizationError, KafkaProtocolError
from jointbus.streams.keystore import write_private
from jointbus.streams.reader import end_offset, read_topic
from jointbus.streams.sdk import Publisher, Subscriber
from jointbus.streams.security import ADMIN, AUDITOR, Credentials
from jointbus.streams.topics import AUDIT_TOPIC, outbox

pytestmark = pytest.mark.broker
Secured = tuple[LocalBroker, dict[str, Credentials]]
FAST = 30.0  # seconds: "fails fast" (today's hang never ends)


def jointbus(home: Path, bootstrap: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `jointbus ...` as a person would, against ``bootstrap`` (bounded: 120 s)."""
    return subprocess.run(
        [sys.executable, "-m", "jointbus", *args],
        env={**os.environ, "JOINTBUS_HOME": str(home), "JOINTBUS_BOOTSTRAP": bootstrap, **env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed (exit status 2, nothing else, no traceback)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


async def test_wrong_password_is_not_called_retriable(secured: Secured, tmp_path: Path) -> None:
    """A guessed password is refused as ``auth_failed``, not retriable, in one line; aiokafka
    itself only says "Unable to bootstrap" (retriable), which used to be passed on."""
    broker, _ = secured
    guess = Credentials(AUDITOR, "guess")
    began = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as info:
        await end_offset(broker.bootstrap, AUDIT_TOPIC, **guess.client_kwargs())
    assert time.monotonic() - began < FAST
    assert info.value.reason == "auth_failed"
    assert info.value.retriable is False
    assert isinstance(info.value.__cause__, KafkaConnectionError)  # what aiokafka raised
    assert info.value.__cause__.retriable is True
    registry, rings = new_federation(utcnow() - timedelta(days=1))
    publisher = Publisher(
        "sc-zigong", rings["sc-zigong"], registry, broker.bootstrap, **guess.client_kwargs()
    )
    with pytest.raises(KafkaAuthenticationError):
        await publisher.start()

    home = tmp_path / "home"
    write_private_json(home / "keys" / "kafka" / f"{AUDITOR}.json", guess)
    done = jointbus(home, broker.bootstrap, "status", JOINTBUS_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    line = one_error_line(done)
    assert "[auth_failed]" in line
    assert "refused the credentials of 'auditor'" in line
    assert "retriable" not in line


def write_private_json(path: Path, cred: Credentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(cred.__dict__))


async def test_forbidden_topic_read_by_assignment_fails_fast(secured: Secured) -> None:
    """sc-zigong reading the audit topic, or cq-dazu's inbox, by partition assignment (no
    group, as the reader and a group-less Subscriber do) is refused within seconds with
    ``not_authorized``; it used to wait for records forever. Its own inbox still reads."""
    broker, creds = secured
    zigong = creds["sc-zigong"].client_kwargs()
    began = time.monotonic()

    async def read_audit() -> None:
        async for _ in read_topic(broker.bootstrap, AUDIT_TOPIC, **zigong):
            pass

    with pytest.raises(KafkaAuthorizationError) as info:
        await asyncio.wait_for(read_audit(), FAST)
    assert info.value.reason == "not_authorized"
    assert AUDIT_TOPIC in info.value.message
    assert time.monotonic() - began < 10

    registry, rings = new_federation(utcnow() - timedelta(days=1))
    other = Subscriber(
        "cq-dazu", rings["cq-dazu"], registry, broker.bootstrap, group_id=False, receipts=False, **zigong
    )
    began = time.monotonic()
    with pytest.raises(KafkaAuthorizationError) as info:
        await asyncio.wait_for(other.start(), FAST)
    assert info.value.reason == "not_authorized"
    assert time.monotonic() - began < 10

    own = Subscriber(
        "sc-zigong",
        rings["sc-zigong"],
        registry,
        broker.bootstrap,
        group_id=False,
        receipts=False,
        until_end=True,
        **zigong,
    )
    async with asyncio.timeout(FAST), own:
        assert [d async for d in own] == []


def findings(count: int, chars: int) -> dict[str, Any]:
    """A findings report whose size grows with ``count`` × ``chars``."""
    return {
        "findings": [
            {
                "finding_id": f"F-{i}",
                "category": "工程质量",
                "description": "渠道衬砌混凝土强度不达标" * (chars // 12),
                "severity": "high",
                "responsible_unit": "某水利工程局",
            }
            for i in range(count)
        ]
    }


async def outbox_ids(broker: LocalBroker, admin: Credentials, agency: str) -> list[str]:
    """Event ids in ``agency``'s outbox, every partition, read to the end (bounded)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, **admin.client_kwargs())
    await consumer.start()
    ids = []
    try:
        tps = [TopicPartition(outbox(agency), p) for p in await readable_partitions(consumer, outbox(agency))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async with asyncio.timeout(FAST):
            while True:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    ids += [json.loads(r.value)["id"] for r in records]
    finally:
        await consumer.stop()
    return ids


async def test_publisher_recovers_after_a_too_large_record(secured: Secured) -> None:
    """An envelope over the bus's limit is refused before it is sent (``too_large``); a
    record the broker refuses (MessageSizeTooLarge) costs only that record: the next publish
    on the same partition works, where the idempotent producer used to fail every later
    send with OutOfOrderSequenceNumber."""
    broker, creds = secured
    agency = "sc-neijiang"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **creds[ADMIN].client_kwargs())
    await admin.start()
    try:  # this broker takes at most 64 KiB per record in the outbox: below the bus's limit
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, outbox(agency), {"max.message.bytes": "65536"})]
        )
    finally:
        await admin.close()
    registry, rings = new_federation(utcnow() - timedelta(days=1))
    subject = f"jointcheck/{uuid.uuid4()}"  # one key: one partition, one sequence
    args = ("jointcheck.findings_reported", subject, ["sc-zigong"])
    async with asyncio.timeout(120):
        async with Publisher(
            agency, rings[agency], registry, broker.bootstrap, **creds[agency].client_kwargs()
        ) as pub:
            assert 65536 < len(to_wire(pub.build(*args, findings(30, 1000)))) < MAX_ENVELOPE_BYTES
            assert len(to_wire(pub.build(*args, findings(100, 1000)))) > MAX_ENVELOPE_BYTES
            first = await pub.publish(*args, findings(1, 24))

            with pytest.raises(SchemaError) as info:
                await pub.publish(*args, findings(100, 1000))
            assert info.value.reason == Reason.TOO_LARGE
            assert pub.replaced == 0  # refused before sending: the producer was never touched

            with pytest.raises(MessageSizeTooLargeError):
                await pub.publish(*args, findings(30, 1000))
            after = await pub.publish(*args, findings(1, 24))
            also = await pub.publish(*args, findings(1, 24))
            assert pub.replaced == 1
    assert await outbox_ids(broker, creds[ADMIN], agency) == [first, after, also]


async def test_plaintext_client_on_secured_port_fails_fast(secured: Secured, tmp_path: Path) -> None:
    """`JOINTBUS_SECURITY_PROTOCOL=PLAINTEXT jointbus status` against the SASL port answers
    within seconds, in one line, that the broker expects SASL_PLAINTEXT."""
    broker, _ = secured
    home = tmp_path / "home"
    home.mkdir()
    began = time.monotonic()
    done = jointbus(home, broker.bootstrap, "status", JOINTBUS_SECURITY_PROTOCOL="PLAINTEXT")
    assert time.monotonic() - began < FAST
    line = one_error_line(done)
    assert f"the broker at {broker.bootstrap} expects SASL_PLAINTEXT" in line
    assert "[security_protocol]" in line
    assert "retriable" not in line
    began = time.monotonic()
    with pytest.raises(KafkaProtocolError) as info:
        await end_offset(broker.bootstrap, AUDIT_TOPIC)
    assert info.value.retriable is False
    assert time.monotonic() - began < FAST
