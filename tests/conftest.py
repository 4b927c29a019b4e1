"""Shared fixtures: one real Kafka broker for the whole session, on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jointbus.processes import WorkerProcess
from schemas.keys import Keyring
from schemas.registry import AGENCY_IDS, Registry
from streams.admin import provision_topics
from streams.broker import LocalBroker, free_port
from streams.security import ADMIN, Credentials, acl_plan, apply_acls, new_credentials, principals
from streams.settings import Settings
from tests.harness import make_federation


def _broker(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp(name), free_port(), heap="512m")
    broker.start()
    asyncio.run(provision_topics(Settings(bootstrap=broker.bootstrap), broker.bootstrap))
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


def secured_broker(home: Path) -> tuple[LocalBroker, dict[str, Credentials]]:
    """A started broker with SASL/SCRAM on its only client listener, the jointbus topics and
    the bus's ACLs; every principal's credentials in ``home/keys/kafka`` (as the CLI keeps
    them)."""
    creds = new_credentials(home / "keys" / "kafka", principals(AGENCY_IDS))
    broker = LocalBroker(home / "broker", free_port(), heap="512m", scram_users=creds)
    broker.start()
    admin = creds[ADMIN].client_kwargs()
    asyncio.run(provision_topics(Settings(bootstrap=broker.bootstrap), broker.bootstrap, **admin))
    asyncio.run(apply_acls(broker.bootstrap, creds[ADMIN], acl_plan(AGENCY_IDS)))
    return broker, creds


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, dict[str, Credentials]]]:
    """A secured broker of the module's own (SCRAM users, deny-by-default ACLs)."""
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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault and fuzz tests reached: kills survived, inputs tried, losses."""
    from tests.stats import STATS

    if STATS:
        terminalreporter.section("jointbus fault and fuzz counts")
        for name, value in STATS.items():
            terminalreporter.write_line(f"{name}: {value}")
