"""Tampering with an exported audit log: each attack is detected and pinpointed.

The log is built without Kafka by driving the real router logic over a realistic stream
of events, then exported in the bundle format that `jointbus audit verify --from-export`
reads; each test alters a copy of it the way an attacker would.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jointbus.agents.routing import Router
from jointbus.audit.errors import VerificationError
from jointbus.audit.export import read_checkpoints, read_records
from jointbus.audit.merkle import Frontier, leaf_hash
from jointbus.audit.notes import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.audit.verifier import Report, Verifier
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.leaves import LeafRule
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import AUDIT, ROUTER, Registry
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.samples import SAMPLES

NOW = utcnow() - timedelta(hours=1)
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
EVERY = 8  # a checkpoint every 8 leaves


def build_log() -> tuple[list[dict[str, Any]], list[str]]:
    """~60 decisions: lifecycles, receipts, forgeries; checkpoints every EVERY leaves."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    offsets: dict[str, int] = {}
    rows: list[dict[str, Any]] = []

    def send(sender: str, envelope: dict[str, Any]) -> None:
        topic = outbox(sender)
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        ms = int((NOW + timedelta(seconds=len(rows))).timestamp() * 1000)
        routed = router.route(to_wire(envelope), topic, 0, offset, ms)
        for out in routed.outputs:
            if out.topic == AUDIT_TOPIC:
                rows.append({"offset": len(rows), "key": out.key.decode(), "value": out.value.decode()})

    def event(sender: str, family: str, subject: str, to: list[str], **kw: Any) -> dict[str, Any]:
        return compose(
            keyring=RINGS[sender],
            registry=REGISTRY,
            event_type=family,
            subject=subject,
            recipients=to,
            payload=kw.pop("payload", SAMPLES[family]),
            now=NOW + timedelta(seconds=len(rows)),
            **kw,
        )

    for i in range(8):
        issuer, unit = ("sc-yibin", "sc-zigong") if i % 2 else ("cq-dazu", "sc-neijiang")
        s = f"rectification/{uuid.uuid4()}"
        send(issuer, event(issuer, "rectification.issued", s, [unit]))
        send(unit, event(unit, "rectification.progress_reported", s, [issuer]))
        send(unit, event(unit, "rectification.completion_reported", s, [issuer]))
        send(issuer, event(issuer, "rectification.verified", s, [unit]))
        c = f"clue/{uuid.uuid4()}"
        send("sc-luzhou", event("sc-luzhou", "clue.transferred", c, ["cq-jiangjin"]))
        send("cq-jiangjin", event("cq-jiangjin", "clue.disposition_reported", c, ["sc-luzhou"]))  # rejected
        forged = event("cq-rongchang", "rectification.issued", f"rectification/{uuid.uuid4()}", ["sc-yibin"])
        send("cq-rongchang", sign_envelope(forged, Ed25519PrivateKey.generate(), forged["sigkeyid"]))
    notes = []
    frontier, rule = Frontier(), LeafRule()
    audit_key = RINGS[AUDIT].signer(REGISTRY, NOW)[1]
    for row in rows:
        if rule.admit(row["key"].encode()):
            frontier.append(leaf_hash(row["value"].encode()))
            if frontier.size % EVERY == 0:
                notes.append(sign_checkpoint(Checkpoint(ORIGIN, frontier.size, frontier.root()), audit_key))
    return rows, notes


ROWS, NOTES = build_log()


def write(
    directory: Path, rows: list[dict[str, Any]], notes: list[str], registry: Registry = REGISTRY
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "records.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (directory / "checkpoints.jsonl").write_text("".join(json.dumps({"note": n}) + "\n" for n in notes))
    (directory / "registry.json").write_text(registry.model_dump_json())
    return directory


def verify(directory: Path) -> Report:
    verifier = Verifier(REGISTRY, read_checkpoints(directory))
    for offset, key, value in read_records(directory):
        verifier.feed(offset, key, value)
    return verifier.finish()


def failure(directory: Path) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify(directory)
    return info.value


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write(tmp_path / "bundle", ROWS, NOTES)


def test_untampered_log_verifies(bundle: Path) -> None:
    """The honest log passes: every decision re-derived, every checkpoint matched."""
    report = verify(bundle)
    assert report.leaves == len(ROWS)
    assert report.decisions["rejected"] == 16  # 8 early dispositions + 8 forgeries
    assert report.checkpoints == len(NOTES) == len(ROWS) // EVERY


def test_one_byte_changed_is_pinpointed(tmp_path: Path) -> None:
    """A digit of a payload changed (60% → 90%): the event's signature no longer holds."""
    rows = [dict(r) for r in ROWS]
    k = next(i for i, r in enumerate(rows) if '"percent_complete":60' in r["value"])
    rows[k]["value"] = rows[k]["value"].replace('"percent_complete":60', '"percent_complete":90', 1)
    err = failure(write(tmp_path / "b", rows, NOTES))
    assert (err.index, err.why) == (k, "decision_mismatch")


def test_one_record_deleted_is_pinpointed(tmp_path: Path) -> None:
    """A deleted record leaves a gap in the audit topic's offsets."""
    k = 13
    err = failure(write(tmp_path / "b", ROWS[:k] + ROWS[k + 1 :], NOTES))
    assert (err.index, err.why) == (k, "missing_record")


def unnumbered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as a router before leaf numbers wrote them (no ``leaf`` in any record)."""
    out = []
    for row in rows:
        record = json.loads(row["value"])
        record.pop("leaf", None)
        out.append({**row, "value": AuditRecord.model_validate(record).to_bytes().decode()})
    return out


def test_one_record_deleted_from_an_unnumbered_log_is_pinpointed_by_its_offset(tmp_path: Path) -> None:
    """A log written before records carried their leaf index has a record at every
    offset: a deleted one still leaves a gap that names it (no checkpoint needed)."""
    k = 13
    rows = unnumbered(ROWS)
    assert verify(write(tmp_path / "whole", rows, [])).leaves == len(ROWS)
    err = failure(write(tmp_path / "b", rows[:k] + rows[k + 1 :], []))
    assert (err.index, err.why) == (k, "missing_record")


def test_leaf_index_dropped_from_a_later_record_is_refused(tmp_path: Path) -> None:
    """Once records carry their leaf index, a leaf without one (rewritten to hide a gap
    behind the old offsets rule) is not a well-formed record."""
    k = 20
    rows = [*ROWS[:k], *unnumbered(ROWS[k : k + 1]), *ROWS[k + 1 :]]
    err = failure(write(tmp_path / "b", rows, []))
    assert (err.index, err.why) == (k, "not_a_record")


def test_two_records_swapped_are_pinpointed(tmp_path: Path) -> None:
    """Two records swapped: the first is out of place."""
    k = 20
    rows = [*ROWS[:k], ROWS[k + 1], ROWS[k], *ROWS[k + 2 :]]
    err = failure(write(tmp_path / "b", rows, NOTES))
    assert err.index == k
    assert err.why in ("missing_record", "reordered_record")


def test_record_inserted_is_pinpointed(tmp_path: Path) -> None:
    """A fabricated acceptance inserted (offsets renumbered to hide it) fails re-derivation."""
    k = 30
    fake = json.loads(ROWS[k]["value"])
    fake.update(
        position="jointbus.outbox.sc-yibin:0:9999",
        decision="accepted",
        reason=None,
        detail="",
        delivered_to=["cq-dazu"],
    )
    fake.pop("notice", None)
    from jointbus.schemas.records import AuditRecord

    value = AuditRecord.model_validate(fake).to_bytes().decode()
    rows = [*ROWS[:k], {"offset": k, "key": fake["position"], "value": value}]
    rows += [{**r, "offset": r["offset"] + 1} for r in ROWS[k:]]
    err = failure(write(tmp_path / "b", rows, NOTES))
    assert (err.index, err.why) == (k, "decision_mismatch")


def test_forged_checkpoint_is_detected(tmp_path: Path) -> None:
    """A checkpoint signed by any key but the audit key is refused."""
    cp = Checkpoint(ORIGIN, 8, b"\x00" * 32)
    forged = sign_checkpoint(cp, Ed25519PrivateKey.generate())
    err = failure(write(tmp_path / "b", ROWS, [*NOTES, forged]))
    assert err.why == "forged_checkpoint"


def test_truncated_log_is_detected(tmp_path: Path) -> None:
    """Records cut from the end while a checkpoint still signs them: truncation, at the cut."""
    keep = len(ROWS) - 5
    err = failure(write(tmp_path / "b", ROWS[:keep], NOTES))
    assert (err.index, err.why) == (keep, "truncated")


def test_fork_is_detected(tmp_path: Path) -> None:
    """Two checkpoints of the same size with different roots, both genuinely signed."""
    key = RINGS[AUDIT].signer(REGISTRY, NOW)[1]
    other = sign_checkpoint(Checkpoint(ORIGIN, 16, leaf_hash(b"another history")), key)
    err = failure(write(tmp_path / "b", ROWS, [*NOTES, other]))
    assert (err.index, err.why) == (15, "fork")


def test_field_outside_the_decision_is_caught_by_the_signed_root(tmp_path: Path) -> None:
    """Changing a receive time (not re-derivable) breaks the next checkpoint; named by range."""
    rows = [dict(r) for r in ROWS]
    k = 17
    record = json.loads(rows[k]["value"])
    ms = record["received_at"][-4:-1]
    record["received_at"] = record["received_at"][:-4] + ("999" if ms != "999" else "998") + "Z"
    from jointbus.schemas.records import AuditRecord

    rows[k]["value"] = AuditRecord.model_validate(record).to_bytes().decode()
    assert rows[k]["value"] != ROWS[k]["value"]
    err = failure(write(tmp_path / "b", rows, NOTES))
    assert err.why == "checkpoint_mismatch"
    assert err.index is not None
    assert err.index <= k < err.index + EVERY


def test_cli_names_the_first_bad_index(tmp_path: Path) -> None:
    """`jointbus audit verify --from-export` exits 1 with the index in one line."""
    import os
    import subprocess
    import sys

    k = 13
    bundle = write(tmp_path / "b", ROWS[:k] + ROWS[k + 1 :], NOTES)
    registry = tmp_path / "registry.json"
    shutil.copy(bundle / "registry.json", registry)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jointbus",
            "audit",
            "verify",
            "--from-export",
            str(bundle),
            "--registry",
            str(registry),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JOINTBUS_HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert f"FAILED at index {k}" in done.stderr
    assert "[missing_record]" in done.stderr
    assert "Traceback" not in done.stderr


def verify_parallel(directory: Path) -> Report:
    """The same verification with the signatures checked by two processes ahead."""
    import asyncio

    from jointbus.audit.parallel import feed_parallel

    verifier = Verifier(REGISTRY, read_checkpoints(directory))
    asyncio.run(feed_parallel(verifier, read_records(directory), 2, lambda _: None))
    return verifier.finish()


def test_parallel_verify_agrees_and_pinpoints_the_same_forgery(bundle: Path, tmp_path: Path) -> None:
    """`audit verify --jobs 2` reports what one process reports on the honest log, and a
    forged payload (its signature no longer holds, checked in another process) fails at the
    same index for the same reason."""
    one, two = verify(bundle), verify_parallel(bundle)
    assert (one.leaves, one.decisions, one.checkpoints, one.root) == (
        two.leaves,
        two.decisions,
        two.checkpoints,
        two.root,
    )
    rows = [dict(r) for r in ROWS]
    k = next(i for i, r in enumerate(rows) if '"percent_complete":60' in r["value"])
    rows[k]["value"] = rows[k]["value"].replace('"percent_complete":60', '"percent_complete":90', 1)
    forged = write(tmp_path / "forged", rows, NOTES)
    with pytest.raises(VerificationError) as info:
        verify_parallel(forged)
    assert (info.value.index, info.value.why) == (k, "decision_mismatch")
