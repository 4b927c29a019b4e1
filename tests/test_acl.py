"""Kafka itself keeps agencies where they belong: SCRAM-SHA-512 principals and
deny-by-default ACLs on a secured broker. Each test is named after the attack Kafka refuses."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from jointbus.agents.worker import LEASE_GROUP, TRANSACTIONAL_ID
from jointbus.streams.broker import LocalBroker
from jointbus.streams.reader import read_topic
from jointbus.streams.security import Credentials, new_credentials
from jointbus.streams.topics import AUDIT_TOPIC, cosignature_topic, inbox, outbox

pytestmark = pytest.mark.broker


async def produce(broker: LocalBroker, cred: Credentials, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, request_timeout_ms=10000, **cred.client_kwargs()
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", key=b"k")
    finally:
        await producer.stop()


async def consume(broker: LocalBroker, cred: Credentials, topic: str) -> None:
    """Subscribe in a group the principal may use, and fetch (bounded in time)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"jointbus-inbox-{cred.username}-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        **cred.client_kwargs(),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            for _ in range(3):
                await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()


async def test_agency_writes_its_outbox_and_reads_its_inbox(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """What an agency is allowed to do works with its own credentials."""
    broker, creds = secured
    await produce(broker, creds["sc-zigong"], outbox("sc-zigong"))
    await consume(broker, creds["sc-zigong"], inbox("sc-zigong"))


async def test_reading_another_agencys_inbox_is_refused(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """sc-zigong's credentials cannot read cq-dazu's inbox (non-recipient read)."""
    broker, creds = secured
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(broker, creds["sc-zigong"], inbox("cq-dazu"))


async def test_writing_another_agencys_outbox_is_refused(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """sc-zigong cannot publish as cq-dazu by writing cq-dazu's outbox."""
    broker, creds = secured
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(broker, creds["sc-zigong"], outbox("cq-dazu"))


async def test_writing_the_audit_topic_is_refused(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """No agency can append to (or forge entries in) the audit log."""
    broker, creds = secured
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(broker, creds["sc-zigong"], AUDIT_TOPIC)


async def test_deleting_a_topic_is_refused(secured: tuple[LocalBroker, dict[str, Credentials]]) -> None:
    """An agency cannot delete the audit topic (or any other)."""
    broker, creds = secured
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **creds["sc-zigong"].client_kwargs())
    await admin.start()
    try:
        response = await admin.delete_topics([AUDIT_TOPIC], timeout_ms=10000)
    finally:
        await admin.close()
    codes = {name: code for name, code, *_ in response.topic_error_codes}
    assert codes[AUDIT_TOPIC] == TopicAuthorizationFailedError.errno
    await consume(broker, creds["auditor"], AUDIT_TOPIC)  # still there


async def test_wrong_password_is_refused(secured: tuple[LocalBroker, dict[str, Credentials]]) -> None:
    """A guessed password does not authenticate."""
    broker, _ = secured
    with pytest.raises(KafkaError):
        await produce(broker, Credentials("sc-zigong", "guess"), outbox("sc-zigong"))


def test_credentials_are_private_files(tmp_path: Path) -> None:
    """Credential files are readable by their owner only."""
    creds = new_credentials(tmp_path / "c", ["sc-yibin"])
    assert creds["sc-yibin"].password
    assert (tmp_path / "c" / "sc-yibin.json").stat().st_mode & 0o077 == 0


async def test_agency_cannot_fence_the_router_by_taking_its_transactional_id(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """A member starts a producer with the router's transactional id: had it been allowed,
    its start would bump the epoch and fence the router, stopping the bus. Kafka refuses."""
    broker, creds = secured
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        transactional_id=TRANSACTIONAL_ID,
        request_timeout_ms=10000,
        **creds["sc-zigong"].client_kwargs(),
    )
    try:
        with pytest.raises(TransactionalIdAuthorizationFailed):
            async with asyncio.timeout(30):
                await producer.start()  # its first act: take the id (InitProducerId)
    finally:
        await producer.stop()


async def test_agency_cannot_join_the_router_lease_group(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """A member joins the workers' lease group: had it been allowed, it could hold the lease
    and keep every worker standing by. Kafka refuses the group."""
    broker, creds = secured
    consumer = AIOKafkaConsumer(
        inbox("sc-zigong"),  # a topic it may read: only the group is refused
        bootstrap_servers=broker.bootstrap,
        group_id=LEASE_GROUP,
        **creds["sc-zigong"].client_kwargs(),
    )

    async def join() -> None:
        async with asyncio.timeout(30):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)

    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await join()
    finally:
        await consumer.stop()


async def test_a_member_cannot_write_cosignatures_under_another_agencys_witness(
    secured: tuple[LocalBroker, dict[str, Credentials]],
) -> None:
    """sc-zigong fills cq-dazu's witness topic with forged or padded cosignatures, kept
    forever and read by every witness and auditor: Kafka refuses the write. Its own
    witness's topic takes its records, which every member, the audit service and auditors
    read; the one shared topic every agency could write is gone."""
    broker, creds = secured
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(broker, creds["sc-zigong"], cosignature_topic("cq-dazu"))
    await produce(broker, creds["sc-zigong"], cosignature_topic("sc-zigong"))
    for reader in ("cq-dazu", "auditor", "svc-audit"):
        async with asyncio.timeout(60):
            seen = [
                value
                async for _, _, value in read_topic(
                    broker.bootstrap, cosignature_topic("sc-zigong"), **creds[reader].client_kwargs()
                )
            ]
        assert b"x" in seen, reader
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(broker, creds["sc-zigong"], "jointbus.cosignatures")
