"""Membership comes from the registry, never from a constant: a ninth agency (sc-leshan,
乐山市纪委监委) admitted to a development registry gets its topics, its Kafka user and its
ACLs when provisioning runs again, its events are routed, and it has a row in the figures.
The broker starts with the eight agencies of the development federation, as an operator's
would; the ninth is admitted the way README tells operators to (`jointbus keys admit`, then
`jointbus topics create`)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from jointbus.audit.agent import event_id_of
from jointbus.processes import WorkerProcess
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, admit, new_federation
from jointbus.schemas.projections import Projection
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.admin import admin_client
from jointbus.streams.broker import LocalBroker
from jointbus.streams.errors import KafkaAuthenticationError, KafkaAuthorizationError
from jointbus.streams.provision import provision, topic_specs
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher, Subscriber
from jointbus.streams.security import (
    ADMIN,
    AUDITOR,
    DESCRIBE,
    GROUP,
    PREFIXED,
    READ,
    TOPIC,
    WRITE,
    Acl,
    Credentials,
    acl_plan,
    load_credentials,
)
from jointbus.streams.topics import (
    AUDIT_TOPIC,
    CHECKPOINT_TOPIC,
    COSIGNATURE_PREFIX,
    REGISTRY_TOPIC,
    cosignature_topic,
    inbox,
    outbox,
)
from tests.conftest import secured_broker, secured_settings
from tests.harness import figures_of
from tests.samples import SAMPLES

LESHAN = "sc-leshan"
ADMIT = ("keys", "admit", LESHAN, "--name-zh", "乐山市纪委监委", "--name-en", "Leshan", "--region", "sichuan")
WITHIN = 60.0  # seconds any wait below may take before the test fails, naming what it waited for


def ninth(registry: Registry) -> tuple[Registry, Keyring]:
    """``registry`` with sc-leshan admitted (as `jointbus keys admit` does it)."""
    return admit(registry, LESHAN, name_zh="乐山市纪委监委", name_en="Leshan", region="sichuan", now=utcnow())


# ------------------------------------------------------------------------ pure: no broker
def test_admitted_agency_is_a_member_in_registry_order() -> None:
    """Admitting sc-leshan gives registry v2 with nine agencies (the new one last, before the
    services), its own signing, sealing and witness keys, and the same for everyone else."""
    eight, _ = new_federation(utcnow() - timedelta(days=1))
    nine, ring = ninth(eight)
    assert nine.version == eight.version + 1
    assert nine.agencies == (*eight.agencies, LESHAN)
    assert LESHAN in nine.agency_ids
    assert len(nine.agency_ids) == 9
    assert nine.is_agency(LESHAN)
    assert set(ring.keys) == {f"{LESHAN}#sig-1", f"{LESHAN}#seal-1", f"{LESHAN}#wit-1"}
    assert nine.current_key(LESHAN, "seal", utcnow()).kid == f"{LESHAN}#seal-1"
    assert [m.id for m in nine.members][-2:] == [m.id for m in eight.members][-2:]  # services
    with pytest.raises(JointbusError) as again:
        ninth(nine)
    assert again.value.reason == "exists"
    with pytest.raises(JointbusError) as bad:
        admit(nine, "svc-leshan", name_zh="x", name_en="x", region="sichuan", now=utcnow())
    assert bad.value.reason == "invalid_member"


def test_topics_and_projection_rows_follow_the_registry() -> None:
    """The topic layout and the projection's rows are the registry's agencies, in its order:
    the ninth gets an outbox, an inbox, its witness's cosignature topic and a row; an agency
    the registry does not name gets nothing."""
    eight, _ = new_federation(utcnow() - timedelta(days=1))
    nine, _ = ninth(eight)
    settings = secured_settings(Path("/nonexistent"), "127.0.0.1:1")
    added = {s.name for s in topic_specs(settings, nine.agencies)} - {
        s.name for s in topic_specs(settings, eight.agencies)
    }
    assert added == {outbox(LESHAN), inbox(LESHAN), cosignature_topic(LESHAN)}
    fewer = {s.name for s in topic_specs(settings, eight.agencies[1:])}
    assert outbox(eight.agencies[0]) not in fewer
    rows = Projection(nine.agencies).rows()
    assert [r["agency"] for r in rows] == list(nine.agencies)
    assert rows[-1]["agency"] == LESHAN
    assert [r["agency"] for r in Projection(eight.agencies).rows()] == list(eight.agencies)


def test_acl_plan_gives_the_ninth_its_rules_and_nothing_else() -> None:
    """sc-leshan may write its outbox, read its inbox (groups jointbus-inbox-sc-leshan*), the
    registry and the checkpoints, write its witness's cosignature topic and read every
    witness's, nothing else;
    the router reads its outbox and writes its inbox, auditors read its outbox; every rule of
    the eight stays."""
    eight, _ = new_federation(utcnow() - timedelta(days=1))
    nine, _ = ninth(eight)
    plan = set(acl_plan(nine.agencies))
    assert {r for r in plan if r.principal == LESHAN} == {
        Acl(LESHAN, WRITE, TOPIC, outbox(LESHAN)),
        Acl(LESHAN, DESCRIBE, TOPIC, outbox(LESHAN)),
        Acl(LESHAN, READ, TOPIC, inbox(LESHAN)),
        Acl(LESHAN, DESCRIBE, TOPIC, inbox(LESHAN)),
        Acl(LESHAN, READ, TOPIC, REGISTRY_TOPIC),
        Acl(LESHAN, DESCRIBE, TOPIC, REGISTRY_TOPIC),
        Acl(LESHAN, READ, TOPIC, CHECKPOINT_TOPIC),  # its witness follows them
        Acl(LESHAN, DESCRIBE, TOPIC, CHECKPOINT_TOPIC),
        Acl(LESHAN, WRITE, TOPIC, cosignature_topic(LESHAN)),  # ... publishes its cosignatures
        Acl(LESHAN, DESCRIBE, TOPIC, cosignature_topic(LESHAN)),
        Acl(LESHAN, READ, TOPIC, COSIGNATURE_PREFIX, PREFIXED),  # ... and reads every witness's
        Acl(LESHAN, DESCRIBE, TOPIC, COSIGNATURE_PREFIX, PREFIXED),
        Acl(LESHAN, READ, GROUP, f"jointbus-inbox-{LESHAN}", PREFIXED),
    }
    before = set(acl_plan(eight.agencies))
    assert before < plan
    about_leshan = {r for r in plan - before if r.principal != LESHAN}
    assert {(r.principal, r.operation, r.name) for r in about_leshan} == {
        ("svc-router", READ, outbox(LESHAN)),
        ("svc-router", DESCRIBE, outbox(LESHAN)),
        ("svc-router", WRITE, inbox(LESHAN)),
        ("svc-router", DESCRIBE, inbox(LESHAN)),
        (AUDITOR, READ, outbox(LESHAN)),
        (AUDITOR, DESCRIBE, outbox(LESHAN)),
    }


# ------------------------------------------------------------------ a real secured broker
@dataclass
class Admitted:
    """A secured bus of eight agencies, then sc-leshan admitted and provisioned by the CLI;
    with what was observed before."""

    broker: LocalBroker
    home: Path
    registry: Registry  # the nine
    rings: dict[str, Keyring]
    creds: dict[str, Credentials]
    topics_before: set[str]
    refused_before: KafkaAuthenticationError
    admitted: subprocess.CompletedProcess[str]
    provisioned: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]


def jointbus(home: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jointbus <args>` as an operator runs it, against the secured broker (bounded)."""
    env = {
        **os.environ,
        "JOINTBUS_HOME": str(home),
        "JOINTBUS_BOOTSTRAP": bootstrap,
        "JOINTBUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    }
    env.pop("JOINTBUS_KEYSTORE", None)
    return subprocess.run(
        [sys.executable, "-m", "jointbus", *args], env=env, capture_output=True, text=True, timeout=180
    )


async def topic_names(bootstrap: str, admin: Credentials) -> set[str]:
    async with admin_client(bootstrap, **admin.client_kwargs()) as client:
        return set(await client.list_topics())


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admitted]:
    """Eight agencies provisioned at start; then `keys admit sc-leshan`, `topics create`
    twice."""
    home = tmp_path_factory.mktemp("membership")
    eight, rings = new_federation(utcnow() - timedelta(days=1))
    for ring in rings.values():
        keystore.save_keyring(home / "keys", ring)
    keystore.save_registry(home / "keys", eight)
    broker, creds = secured_broker(home, eight)
    try:
        admin = creds[ADMIN]
        topics_before = asyncio.run(topic_names(broker.bootstrap, admin))
        admitted = jointbus(home, broker.bootstrap, *ADMIT)
        assert admitted.returncode == 0, admitted.stderr
        creds[LESHAN] = load_credentials(home / "keys" / "kafka", LESHAN)
        with pytest.raises(KafkaAuthenticationError) as refused:  # no such user on the broker yet
            asyncio.run(topic_names(broker.bootstrap, creds[LESHAN]))
        provisioned = jointbus(home, broker.bootstrap, "topics", "create")
        again = jointbus(home, broker.bootstrap, "topics", "create")
        nine = keystore.load_registry(home / "keys")
        rings[LESHAN] = keystore.load_keyring(home / "keys", LESHAN)
        yield Admitted(
            broker,
            home,
            nine,
            rings,
            creds,
            topics_before,
            refused.value,
            admitted,
            provisioned,
            again,
        )
    finally:
        broker.stop()


@pytest.mark.broker
def test_keys_admit_writes_the_member_its_keys_and_credentials(bus: Admitted) -> None:
    """`jointbus keys admit` puts sc-leshan in registry v2 and writes its private keys and its
    Kafka credentials, both 0600; the eight agencies' credentials are untouched."""
    assert "registry v2: sc-leshan admitted (9 agencies)" in bus.admitted.stdout
    assert bus.registry.version == 2
    assert bus.registry.agencies[-1] == LESHAN
    keys = bus.home / "keys"
    for secret in (keys / "private" / f"{LESHAN}.json", keys / "kafka" / f"{LESHAN}.json"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    for agency in bus.registry.agencies[:-1]:
        assert load_credentials(keys / "kafka", agency) == bus.creds[agency]
    assert bus.refused_before.reason == "auth_failed"


@pytest.mark.broker
async def test_provisioning_creates_the_ninth_agencys_topics(bus: Admitted) -> None:
    """Before: the eight agencies' topics, nothing of sc-leshan. `topics create` adds exactly
    its outbox and inbox (3 partitions each), its witness's cosignature topic (1) and its
    Kafka user; run again, it adds nothing."""
    assert outbox(LESHAN) not in bus.topics_before
    assert inbox(LESHAN) not in bus.topics_before
    assert bus.provisioned.returncode == 0, bus.provisioned.stderr
    assert "9 member agencies: 3 topics created, 1 Kafka users created" in bus.provisioned.stdout
    after = await topic_names(bus.broker.bootstrap, bus.creds[ADMIN])
    assert after - bus.topics_before == {outbox(LESHAN), inbox(LESHAN), cosignature_topic(LESHAN)}
    async with admin_client(bus.broker.bootstrap, **bus.creds[ADMIN].client_kwargs()) as client:
        described = await client.describe_topics([outbox(LESHAN), inbox(LESHAN), cosignature_topic(LESHAN)])
    assert sorted(len(t["partitions"]) for t in described) == [1, 3, 3]
    assert bus.again.returncode == 0, bus.again.stderr
    assert "0 topics created, 0 Kafka users created" in bus.again.stdout
    done = await provision(secured_settings(bus.home, bus.broker.bootstrap), bus.registry)
    assert (done.agencies, done.topics, done.users) == (bus.registry.agencies, (), ())


@pytest.mark.broker
async def test_ninth_agency_authenticates_and_kafka_keeps_it_in_its_place(bus: Admitted) -> None:
    """With its new credentials sc-leshan authenticates, writes its own outbox and reads its
    own inbox; Kafka refuses it another agency's inbox and outbox."""
    leshan = bus.creds[LESHAN].client_kwargs()
    async with asyncio.timeout(WITHIN):
        producer = AIOKafkaProducer(
            bootstrap_servers=bus.broker.bootstrap, request_timeout_ms=10000, **leshan
        )
        await producer.start()
        try:
            await producer.send_and_wait(outbox(LESHAN), b"not an envelope", key=b"k")
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(outbox("sc-zigong"), b"x", key=b"k")
        finally:
            await producer.stop()
        own = Subscriber(
            LESHAN,
            bus.rings[LESHAN],
            bus.registry,
            bus.broker.bootstrap,
            group_id=False,
            receipts=False,
            until_end=True,
            **leshan,
        )
        async with own:
            async for _ in own:
                pass
        other = Subscriber(
            "cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.broker.bootstrap, group_id=False, **leshan
        )
        with pytest.raises(KafkaAuthorizationError) as refused:
            await other.start()
        assert refused.value.reason == "not_authorized"


@pytest.mark.broker
async def test_ninth_agencys_events_are_routed_and_counted(bus: Admitted) -> None:
    """A worker started on the nine-agency registry routes sc-leshan's clue to sc-zigong, who
    reads and opens it with its own credentials; `jointbus status` shows a row for sc-leshan
    (one clue transferred) after the eight."""
    worker = WorkerProcess(bus.home, bus.broker.bootstrap, JOINTBUS_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    worker.start()
    try:
        async with Publisher(
            LESHAN, bus.rings[LESHAN], bus.registry, bus.broker.bootstrap, **bus.creds[LESHAN].client_kwargs()
        ) as pub:
            sent = await pub.publish(
                "clue.transferred", f"clue/{uuid.uuid4()}", ["sc-zigong"], SAMPLES["clue.transferred"]
            )
        record = await decision_of(bus, sent)
        assert (record.decision, record.sender, record.delivered_to) == ("accepted", LESHAN, ["sc-zigong"])
        zigong = Subscriber(
            "sc-zigong",
            bus.rings["sc-zigong"],
            bus.registry,
            bus.broker.bootstrap,
            group_id=False,
            receipts=False,
            until_end=True,
            **bus.creds["sc-zigong"].client_kwargs(),
        )
        async with asyncio.timeout(WITHIN), zigong:
            arrived = [d async for d in zigong if d.id == sent]
        assert len(arrived) == 1
        assert arrived[0].envelope.sender == LESHAN
        assert arrived[0].payload.title == SAMPLES["clue.transferred"]["title"]  # opened
    finally:
        worker.stop()
    status = await asyncio.to_thread(jointbus, bus.home, bus.broker.bootstrap, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows, _ = figures_of(status.stdout)
    assert [r["agency"] for r in rows] == list(bus.registry.agencies)
    mine = rows[-1]
    assert (mine["agency"], mine["clues_transferred"]) == (LESHAN, 1)
    assert next(r for r in rows if r["agency"] == "sc-zigong")["clues_received"] == 1


async def decision_of(bus: Admitted, event_id: str) -> AuditRecord:
    """The audit record deciding ``event_id``, read as the auditor (bounded wait)."""
    auditor = bus.creds[AUDITOR].client_kwargs()
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        async for _, _, value in read_topic(bus.broker.bootstrap, AUDIT_TOPIC, **auditor):
            if event_id_of(value) == event_id:
                return AuditRecord.model_validate_json(value)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no decision for {event_id} in the audit log within {WITHIN:.0f} s")
