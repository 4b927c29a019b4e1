"""The auditor's reader: ``audit verify`` is fed every record of the audit log, which holds
what members sent (accepted or not) inside records the router wrote. Whatever bytes a
record holds, the verifier decides it — a typed ``VerificationError`` naming the leaf, or
on to the next — and never fails otherwise."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jointbus.agents.routing import Router
from jointbus.audit.errors import AuditError, VerificationError
from jointbus.audit.export import read_checkpoints, read_cosignatures, read_records
from jointbus.audit.verifier import Verifier
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.registry import ROUTER
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.fuzzing import examples, fuzz_target
from tests.samples import SAMPLES

NOW = utcnow()
STAMP = int(NOW.timestamp() * 1000)
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))


def real_records() -> list[tuple[bytes, bytes]]:
    """(key, value) of the audit records a router writes for honest and refused events."""
    router = Router(REGISTRY, RINGS[ROUTER], Rules())
    offsets = itertools.count()
    wires = [
        to_wire(
            compose(
                keyring=RINGS["sc-zigong"],
                registry=REGISTRY,
                event_type=family,
                subject=f"{family.split('.')[0]}/{uuid.uuid4()}",
                recipients=["cq-yongchuan"],
                payload=SAMPLES[family],
                now=NOW,
            )
        )
        for family in ("rectification.issued", "clue.transferred")
    ]
    wires += [b'{"recipients": 5}', b"not json", b"[" * 40]
    records = []
    for wire in wires:
        routed = router.route(wire, outbox("sc-zigong"), 0, next(offsets), STAMP)
        records += [(o.key, o.value) for o in routed.outputs if o.topic == AUDIT_TOPIC]
    return records


SEEDS = real_records()


def verify_one(key: bytes, value: bytes) -> None:
    """A verifier reads ``value`` as its first leaf: decided, or a typed failure."""
    verifier = Verifier(REGISTRY, [])
    try:
        verifier.feed(0, key, value)
        verifier.finish()
    except VerificationError:
        pass


@fuzz_target("audit-record", seeds=lambda: [v for _, v in SEEDS])
def audit_record_bytes(value: bytes) -> None:
    verify_one(SEEDS[0][0], value)


@examples(300)
@given(st.sampled_from(SEEDS), st.integers(0, 2**32), st.binary(max_size=40))
def test_a_mutated_audit_record_is_a_typed_failure_or_a_leaf(
    seed: tuple[bytes, bytes], at: int, splice: bytes
) -> None:
    key, value = seed
    cut = at % (len(value) + 1)
    verify_one(key, value[:cut] + splice + value[cut + len(splice) :])


def test_every_real_record_verifies_as_a_first_leaf() -> None:
    """The seeds are real: the first record of a log verifies (or, logged without its
    predecessors, fails only as a typed failure)."""
    verifier = Verifier(REGISTRY, [])
    verifier.feed(0, SEEDS[0][0], SEEDS[0][1])
    assert verifier.report.records == 1


def test_a_bundle_line_of_any_bytes_is_passed_over_or_refused_as_bad_export(tmp_path: Path) -> None:
    """An export bundle is whatever its sender made it: a line nested 5,000 deep (which
    ``json.loads`` answered with RecursionError) is read by the bounded parser."""
    deep = "[" * 5000 + "]" * 5000
    (tmp_path / "cosignatures.jsonl").write_text(f'{deep}\n{{"note": 5}}\nnot json\n', encoding="utf-8")
    assert read_cosignatures(tmp_path) == []
    (tmp_path / "checkpoints.jsonl").write_text(deep + "\n", encoding="utf-8")
    with pytest.raises(AuditError) as refused:
        read_checkpoints(tmp_path)
    assert refused.value.reason == "bad_export"
    (tmp_path / "records.jsonl").write_text(deep + "\n", encoding="utf-8")
    with pytest.raises(AuditError) as refused:
        list(read_records(tmp_path))
    assert refused.value.reason == "bad_export"
