"""The metrics endpoints on the real broker: after a little traffic, the worker's and the
audit agent's answer in the Prometheus text format with the decisions counted by family,
decision and reason, the routing latency observed and the audit log's size; an event of a
type outside the catalog is counted as ``unknown``, so no sender mints time series."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from jointbus import attacks
from jointbus.processes import AuditProcess, WorkerProcess
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.broker import LocalBroker, free_port
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import outbox
from tests.conftest import _broker
from tests.harness import eventually
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker


@dataclass
class Metered:
    bootstrap: str
    registry: Registry
    rings: dict[str, Keyring]
    worker_port: int
    audit_port: int


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    """A broker of its own, a worker and an audit agent each serving metrics."""
    home: Path = tmp_path_factory.mktemp("metered")
    registry, rings = new_federation(utcnow() - timedelta(days=1))
    for ring in rings.values():
        keystore.save_keyring(home / "keys", ring)
    keystore.save_registry(home / "keys", registry)
    brokers = _broker(tmp_path_factory, "metrics-kafka", registry)
    broker: LocalBroker = next(brokers)
    worker_port, audit_port = free_port(), free_port()
    worker = WorkerProcess(home, broker.bootstrap, JOINTBUS_METRICS_PORT=str(worker_port)).start()
    audit = AuditProcess(home, broker.bootstrap, JOINTBUS_METRICS_PORT=str(audit_port)).start()
    yield Metered(broker.bootstrap, registry, rings, worker_port, audit_port)
    audit.stop()
    worker.stop()
    next(brokers, None)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, by name and labels (parsed as Prometheus would)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers.get_content_type() == "text/plain"
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_decisions_latency_and_the_audit_log(metered: Metered) -> None:
    """An accepted event, a forged one and one of an invented type: the worker counts each
    under its family (the invented one as ``unknown``), decision and reason, observes their
    routing time; the audit agent reports its leaves and a signed checkpoint."""
    async with Publisher("sc-zigong", metered.rings["sc-zigong"], metered.registry, metered.bootstrap) as pub:
        routed = await pub.publish_routed(
            "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-yongchuan"],
            SAMPLES["rectification.issued"],
        )  # fmt: skip
    assert routed.accepted
    forged = attacks.forged_signature(
        metered.registry, metered.rings, utcnow(), "sc-luzhou", "sc-yibin", ["cq-dazu"]
    )
    letters = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])
    invented = dict(forged, type=f"org.jointbus.invented_{letters}.v1")  # a fresh type each run
    producer = AIOKafkaProducer(bootstrap_servers=metered.bootstrap, acks="all")
    await producer.start()
    for env in (forged, invented):
        await producer.send_and_wait(outbox("sc-luzhou"), to_wire(env), key=str(env["subject"]).encode())
    await producer.stop()

    async def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = await asyncio.to_thread(scrape, metered.worker_port)
        decisions = {k: v for k, v in samples.items() if k[0] == "jointbus_decisions_total"}
        return samples if sum(decisions.values()) >= 3 else None

    samples = await eventually(counted, within=60, what="three decisions on the worker's metrics")
    accepted = (("decision", "accepted"), ("family", "rectification.issued"), ("reason", ""))
    forged_key = (("decision", "rejected"), ("family", "rectification.issued"), ("reason", "bad_signature"))
    unknown = (("decision", "rejected"), ("family", "unknown"), ("reason", "unknown_type"))
    assert samples[("jointbus_decisions_total", accepted)] >= 1
    assert samples[("jointbus_decisions_total", forged_key)] >= 1
    assert samples[("jointbus_decisions_total", unknown)] >= 1
    assert not any("invented" in str(labels) for _, labels in samples)
    assert samples[("jointbus_routing_seconds_count", ())] >= 3

    async def caught_up() -> bool | None:  # every record decided: no lag (measured every 5 s)
        lags = [v for (name, _), v in (await asyncio.to_thread(scrape, metered.worker_port)).items()
                if name == "jointbus_outbox_lag_records"]  # fmt: skip
        return True if lags and sum(lags) == 0 else None

    await eventually(caught_up, within=30, what="outbox lag samples, all zero")

    async def audited() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = await asyncio.to_thread(scrape, metered.audit_port)
        leaves = found.get(("jointbus_audit_leaves", ()), 0)
        return found if leaves >= 3 and found.get(("jointbus_checkpoints_total", ()), 0) >= 1 else None

    audit = await eventually(audited, within=60, what="the audit agent's leaves and a checkpoint")
    assert audit[("jointbus_audit_lag_records", ())] >= 0
    assert audit[("jointbus_checkpoint_age_seconds", ())] >= 0


def test_dashboard_and_readme_name_only_metrics_that_exist() -> None:
    """docker/grafana-dashboard.json and the README's metric table use the names
    streams/metrics.py defines (a renamed metric would leave an empty panel), and the
    table's "from" column says which process exposes each, as the code does."""
    import json
    import re

    from jointbus.streams.metrics import COMPONENTS

    root = Path(__file__).resolve().parent.parent
    exposed_by = {
        family.name: component
        for component, collectors in COMPONENTS.items()
        for collector in collectors
        for family in collector.collect()
    }
    defined = set(exposed_by)
    dashboard = json.loads((root / "docker" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"jointbus_[a-z_]+", target["expr"])
    }
    assert used <= defined, sorted(used - defined)
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = {
        re.sub(r"_total$", "", name): source
        for name, source in re.findall(r"^\| `(jointbus_[a-z_]+)` \| (\w+) \|", readme, re.MULTILINE)
    }
    assert table == exposed_by


def test_each_process_exposes_its_own_metrics_only() -> None:
    """An audit agent's endpoint showing ``jointbus_router_leads 0`` would set off a "no
    router leads" alert: each endpoint serves its component's metrics, and the process's."""
    from prometheus_client import generate_latest

    from jointbus.streams.metrics import registry_of

    def names(component: str) -> set[str]:
        text = generate_latest(registry_of(component)).decode()
        return {family.name for family in text_string_to_metric_families(text)}

    worker, audit, witness = names("worker"), names("audit"), names("witness")
    assert "jointbus_router_leads" in worker
    assert "jointbus_router_leads" not in audit | witness
    assert "jointbus_audit_leaves" in audit
    assert "jointbus_audit_leaves" not in worker | witness
    assert "jointbus_witness_refusals" in witness
    assert "jointbus_witness_refusals" not in worker | audit
    assert all("process_cpu_seconds" in found for found in (worker, audit, witness))
