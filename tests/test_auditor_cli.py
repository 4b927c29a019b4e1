"""An auditor holding only the public registry and the read-only ``auditor`` Kafka principal
runs every read-only audit command against a secured broker with routed traffic. `audit
prove` and `audit consistency` used to start an idempotent producer, which the ACLs refuse
(ClusterAuthorizationFailed, then "Unclosed AIOKafkaProducer")."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jointbus.audit.agent import event_id_of, published_checkpoints
from jointbus.processes import AuditProcess, WorkerProcess
from jointbus.schemas.keys import Keyring
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.security import AUDITOR, Credentials
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import secured_broker
from tests.harness import eventually, figures_of, make_federation
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker
SECURED = {"JOINTBUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}


@dataclass
class SecuredBus:
    """A secured broker with the worker and the audit service running as their principals."""

    bootstrap: str
    home: Path
    registry: Registry
    rings: dict[str, Keyring]
    creds: dict[str, Credentials]


@pytest.fixture(scope="module")
def secured_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBus]:
    """Broker (SCRAM + ACLs), `jointbus worker` as svc-router, `jointbus audit run` as svc-audit."""
    home = tmp_path_factory.mktemp("secured-bus")
    broker, creds = secured_broker(home)
    registry, rings = make_federation(home)
    router = WorkerProcess(home, broker.bootstrap, **SECURED)
    audit = AuditProcess(home, broker.bootstrap, **SECURED)
    try:
        router.start()
        audit.start()
        yield SecuredBus(broker.bootstrap, home, registry, rings, creds)
    finally:
        audit.stop()
        router.stop()
        broker.stop()


async def routed_traffic(bus: SecuredBus) -> list[str]:
    """Three accepted events and one the router rejects, each published with its agency's
    own credentials; returns their ids once every decision is in the audit log."""
    sent: list[str] = []
    plan = [
        ("sc-zigong", "rectification.issued", ["cq-yongchuan"]),
        ("sc-luzhou", "clue.transferred", ["cq-jiangjin"]),
        ("cq-dazu", "rectification.issued", ["sc-neijiang"]),
        ("sc-zigong", "rectification.issued", ["cq-nowhere"]),  # unknown_recipient
    ]
    for agency, family, to in plan:
        kafka = bus.creds[agency].client_kwargs()
        async with Publisher(agency, bus.rings[agency], bus.registry, bus.bootstrap, **kafka) as pub:
            kind = family.split(".")[0]
            sent.append(await pub.publish(family, f"{kind}/{uuid.uuid4()}", to, SAMPLES[family]))
    auditor = bus.creds[AUDITOR].client_kwargs()

    async def all_decided() -> bool | None:
        decided = {
            event_id
            async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC, **auditor)
            if (event_id := event_id_of(value)) in sent
        }
        return True if decided == set(sent) else None

    await eventually(all_decided, within=60, what=f"a decision for each of {sent}")
    return sent


async def checkpointed(bus: SecuredBus) -> int:
    """Wait (bounded) until the audit service signed a checkpoint over the whole audit log;
    returns its size."""
    auditor = bus.creds[AUDITOR].client_kwargs()

    async def covering() -> int | None:
        rule = LeafRule()
        leaves = sum(
            [1 async for _, key, _ in read_topic(bus.bootstrap, AUDIT_TOPIC, **auditor) if rule.admit(key)]
        )
        signed = await published_checkpoints(bus.bootstrap, bus.registry, **auditor)
        size = max((cp.size for cp, _ in signed), default=0)
        return size if leaves and size == leaves else None

    return await eventually(covering, within=60, what="a checkpoint over the whole audit log")


def auditor_home(bus: SecuredBus, where: Path) -> Path:
    """What an auditor has: the public registry and the auditor's Kafka credentials."""
    home = where / "auditor"
    (home / "keys" / "kafka").mkdir(parents=True)
    shutil.copy(bus.home / "keys" / keystore.REGISTRY_FILE, home / "keys")
    shutil.copy(bus.home / "keys" / "kafka" / f"{AUDITOR}.json", home / "keys" / "kafka")
    return home


async def test_auditor_runs_every_read_only_command_on_a_secured_broker(
    secured_bus: SecuredBus, tmp_path: Path
) -> None:
    """verify, replay, export (and verify of the export), prove (and check-proof),
    consistency and status all succeed as ``auditor``, with no producer and no warning."""
    bus = secured_bus
    sent = await routed_traffic(bus)
    size = await checkpointed(bus)
    home = auditor_home(bus, tmp_path)
    env = {
        **os.environ,
        "JOINTBUS_HOME": str(home),
        "JOINTBUS_BOOTSTRAP": bus.bootstrap,
        **SECURED,
    }

    def jointbus(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "jointbus", *args],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        for bad in ("Traceback", "Unclosed", "Authorization", "error:"):
            assert bad not in done.stderr, (args, done.stderr)
        return done

    assert "audit log OK" in jointbus("audit", "verify").stdout

    agencies, whole = figures_of(jointbus("audit", "replay", "--json").stdout)
    assert whole["records"] == size
    rows = {row["agency"]: row for row in agencies}
    assert rows["sc-zigong"]["rect_issued"] >= 1
    assert rows["sc-zigong"]["rejected"] >= 1

    bundle = tmp_path / "bundle"
    jointbus("audit", "export", str(bundle))
    records = [json.loads(line) for line in (bundle / "records.jsonl").read_text().splitlines()]
    assert len(records) == size
    about = {event_id_of(r["value"].encode()) for r in records}
    assert set(sent) <= about
    assert "audit log OK" in jointbus("audit", "verify", "--from-export", str(bundle)).stdout

    proof = tmp_path / "event.tlog-proof"
    jointbus("audit", "prove", sent[0], "--out", str(proof))
    assert proof.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    assert "proof OK" in jointbus("audit", "check-proof", str(proof)).stdout
    assert stat.S_IMODE((home / "audit").stat().st_mode) == 0o700  # the index is private

    consistency = jointbus("audit", "consistency", "1", str(size)).stdout
    assert f"consistency 1 → {size}: verified" in consistency

    assert "jointbus status" in jointbus("status").stdout
    decisions = [AuditRecord.model_validate_json(r["value"]).decision for r in records]
    assert decisions.count("rejected") >= 1
