"""Shared fixtures: one real Kafka broker for the whole session, on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.admin import provision_topics
from streams.broker import LocalBroker, free_port
from streams.settings import Settings


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real single-node KRaft broker in a temporary directory, with the jointbus topics."""
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), free_port(), heap="512m")
    broker.start()
    asyncio.run(provision_topics(Settings(bootstrap=broker.bootstrap), broker.bootstrap))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka: LocalBroker) -> str:
    """The bootstrap address of the session broker."""
    return kafka.bootstrap


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated JOINTBUS_HOME for commands run in-process."""
    monkeypatch.setenv("JOINTBUS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
