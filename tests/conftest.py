"""Shared fixtures: one real Kafka broker for the whole session, on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jointbus.processes import WorkerProcess
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.registry import Registry
from jointbus.streams.broker import LocalBroker, free_port
from jointbus.streams.provision import provision
from jointbus.streams.security import ADMIN, Credentials, ensure_credentials, principals
from jointbus.streams.settings import Settings
from tests.harness import make_federation


def development_registry() -> Registry:
    """A new development federation's registry: the members a test broker is provisioned for."""
    return new_federation(utcnow())[0]


def _broker(
    tmp_path_factory: pytest.TempPathFactory, name: str, registry: Registry | None = None
) -> Iterator[LocalBroker]:
    """A started plaintext broker provisioned for ``registry``'s members (default: those of a
    development federation)."""
    broker = LocalBroker(tmp_path_factory.mktemp(name), free_port(), heap="512m")
    broker.start()
    asyncio.run(provision(Settings(bootstrap=broker.bootstrap), registry or development_registry()))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real single-node KRaft broker in a temporary directory, with the jointbus topics."""
    yield from _broker(tmp_path_factory, "kafka")


@pytest.fixture(scope="session")
def spare_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A second broker, for tests that must own their topics (crashes, rogue checkpoints)."""
    yield from _broker(tmp_path_factory, "spare-kafka")


def secured_settings(home: Path, bootstrap: str) -> Settings:
    """Settings of a secured bus whose credentials are in ``home/keys/kafka`` (as the CLI
    keeps them)."""
    return Settings(
        bootstrap=bootstrap, home=home, keystore=home / "keys", security_protocol="SASL_PLAINTEXT"
    )


def secured_broker(
    home: Path, registry: Registry | None = None
) -> tuple[LocalBroker, dict[str, Credentials]]:
    """A started broker with SASL/SCRAM on its only client listener, formatted with the
    admin user only and provisioned as `jointbus broker start` does it: topics, SCRAM users
    and ACLs for ``registry``'s members (default: a development federation's). Returns it
    and every principal's credentials (in ``home/keys/kafka``)."""
    registry = registry or development_registry()
    folder = home / "keys" / "kafka"
    admin = ensure_credentials(folder, [ADMIN])
    broker = LocalBroker(home / "broker", free_port(), heap="512m", scram_users=admin)
    broker.start()
    asyncio.run(provision(secured_settings(home, broker.bootstrap), registry))
    return broker, ensure_credentials(folder, principals(registry.agencies))


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, dict[str, Credentials]]]:
    """A secured broker (SCRAM users, deny-by-default ACLs), shared by the modules that only
    try what its ACLs allow and refuse: none of them routes through it or needs its history
    (test_auditor_cli and test_membership start brokers of their own)."""
    broker, creds = secured_broker(tmp_path_factory.mktemp("secured"))
    yield broker, creds
    broker.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka: LocalBroker) -> str:
    """The bootstrap address of the session broker."""
    return kafka.bootstrap


@pytest.fixture(scope="session")
def bus(kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    """The session broker with a federation on disk and a real `jointbus worker` routing."""
    home = tmp_path_factory.mktemp("bus")
    registry, rings = make_federation(home)
    worker = WorkerProcess(
        home, kafka.bootstrap, JOINTBUS_ACK_DEADLINE_SECONDS="4", JOINTBUS_DEADLINE_SCAN_SECONDS="1"
    ).start()
    yield Bus(kafka.bootstrap, home, registry, rings, worker)
    worker.stop()


@dataclass
class Bus:
    """What an integration test needs to talk to the running bus."""

    bootstrap: str
    home: Path
    registry: Registry
    rings: dict[str, Keyring]
    worker: WorkerProcess


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its counts to the controller, which prints them."""
    from tests.stats import STATS

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["jointbus_stats"] = dict(STATS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The controller collects each xdist worker's counts (see pytest_sessionfinish)."""
    from tests.stats import STATS

    STATS.update(getattr(node, "workeroutput", {}).get("jointbus_stats", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault and fuzz tests reached: kills survived, inputs tried, losses."""
    from tests.stats import STATS

    if STATS:
        terminalreporter.section("jointbus fault and fuzz counts")
        for name, value in STATS.items():
            terminalreporter.write_line(f"{name}: {value}")


#: the longest modules (seconds each, measured with ``--durations``), started first: under
#: ``--dist loadfile`` a worker takes whole modules in collection order, so a long module
#: collected last would run alone at the end while the other worker idles
LONGEST_FIRST = (
    "test_soak.py",
    "test_failover.py",
    "test_console.py",
    "test_cluster.py",
    "test_demo.py",
    "test_writer.py",
    "test_witness_live.py",
    "test_governance_live.py",
    "test_gateway.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (stable otherwise), the same order on every xdist worker."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
