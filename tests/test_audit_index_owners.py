"""An auditor's proof downloads raced the audit service on one index file: whichever wrote
second left a smaller tree, the service then signed checkpoints that match no log, and
`audit verify` failed forever. The service's index has one owner; auditors' tools keep their
own, and take turns on it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jointbus.audit.errors import AuditError
from jointbus.auditcli import _reader_index, index_path, reader_index_path, signer_index
from jointbus.streams.settings import Settings
from tests.conftest import Bus


def test_proof_readers_never_write_the_audit_services_index(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path)
    assert reader_index_path(cfg) != index_path(cfg)
    assert reader_index_path(cfg).parent == index_path(cfg).parent


def test_a_second_audit_service_on_the_same_index_is_refused(tmp_path: Path) -> None:
    """``audit checkpoint`` while ``audit run`` holds the index would sign its own view."""
    cfg = Settings(home=tmp_path)
    with signer_index(cfg), pytest.raises(AuditError) as refused, signer_index(cfg):
        pass
    assert refused.value.reason == "index_in_use"
    with signer_index(cfg) as path:  # released with its holder
        assert path == index_path(cfg)


@pytest.mark.broker
async def test_two_proofs_at_once_take_turns_on_the_auditors_index(bus: Bus, tmp_path: Path) -> None:
    """Two downloads in one console (or a download and `audit prove`) never hold the
    auditors' index at once."""
    cfg = Settings(home=tmp_path, bootstrap=bus.bootstrap)
    held: list[tuple[float, float]] = []

    async def one() -> int:
        async with _reader_index(cfg, bus.registry) as log:
            start = time.monotonic()
            await asyncio.sleep(0.3)
            held.append((start, time.monotonic()))
            return log.index.size

    await asyncio.wait_for(asyncio.gather(one(), one()), timeout=120)
    (_, first_end), (second_start, _) = sorted(held)
    assert first_end <= second_start, "both proofs held the index at once"
