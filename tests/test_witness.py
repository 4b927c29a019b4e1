"""An agency's witness, its rules without Kafka: it cosigns a checkpoint only when it is
signed by the audit key and consistent with the last one it cosigned; rollbacks, split views,
bad proofs and forged checkpoints are refused with their reason; its state survives a
restart; cosignatures match the published C2SP vectors."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jointbus.audit.cosign import signature_lines, verify_cosignature, witness_name
from jointbus.audit.cosign_vectors import COSIGNATURE_FILE, build
from jointbus.audit.merkle import consistency_proof, leaf_hash, list_subtree
from jointbus.audit.notes import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.audit.witness import Witness, WitnessRefusedError, WitnessState
from jointbus.audit.witnessing import witnessed
from jointbus.schemas.conformance import VECTORS_DIR
from jointbus.schemas.keys import new_federation
from jointbus.schemas.registry import AUDIT
from jointbus.schemas.vectors import seed
from tests.rules import NOW

REGISTRY, RINGS = new_federation(NOW - timedelta(days=1), witness_quorum=5)
LEAVES = [leaf_hash(f"record {i}".encode()) for i in range(40)]
AUDIT_KEY = RINGS[AUDIT].signer(REGISTRY, REGISTRY.issued_at)[1]
FORK_LEAVES = [*LEAVES[:10], *(leaf_hash(f"rewritten {i}".encode()) for i in range(10, 40))]


def tree_root(size: int, leaves: list[bytes] = LEAVES) -> bytes:
    return list_subtree(leaves[:size])(0, size)


def note(size: int, leaves: list[bytes] = LEAVES, key: Ed25519PrivateKey = AUDIT_KEY) -> str:
    """The audit key's signed checkpoint of the first ``size`` leaves."""
    return sign_checkpoint(Checkpoint(ORIGIN, size, tree_root(size, leaves)), key)


def proof(old: int, new: int, leaves: list[bytes] = LEAVES) -> list[bytes]:
    return consistency_proof(old, new, list_subtree(leaves[:new]))


def witness(agency: str = "sc-zigong", state: WitnessState | None = None) -> Witness:
    return Witness.of(RINGS[agency], REGISTRY, state or WitnessState())


def test_cosigns_a_consistent_sequence_of_checkpoints() -> None:
    """A fresh witness cosigns the first checkpoint, then each one that extends it with a
    proof that verifies; its cosignature verifies under its registered witness key."""
    w = witness()
    first = w.observe(note(10), 0, [], now=1_800_000_000)
    second = w.observe(note(25), 10, proof(10, 25), now=1_800_000_001)
    assert w.state.size == 25
    cp = Checkpoint(ORIGIN, 25, tree_root(25))
    found = witnessed(cp, signature_lines(second), REGISTRY)
    assert found.agencies == ("sc-zigong",)
    assert witnessed(cp, signature_lines(first), REGISTRY).agencies == ()  # a cosignature of 10 is not of 25


def test_rollback_is_refused() -> None:
    """A truncated log: a checkpoint smaller than the one cosigned is refused (rollback) and
    the witness keeps what it held."""
    w = witness()
    w.observe(note(30), 0, [])
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(note(20), 0, [])
    assert refused.value.reason == "rollback"
    assert refused.value.against is not None
    assert w.state.size == 30


def test_forked_checkpoint_is_refused_as_equivocation() -> None:
    """Same size, another root, validly signed by the audit key: a split view, refused with
    both signed notes as evidence."""
    w = witness()
    w.observe(note(30), 0, [])
    forked = note(30, FORK_LEAVES)
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(forked, 30, [])
    assert refused.value.reason == "equivocation"
    assert (refused.value.note, refused.value.against) == (forked, note(30))


def test_rewritten_history_fails_the_consistency_proof() -> None:
    """A larger checkpoint over rewritten leaves: its proof from the cosigned size does not
    verify (inconsistent)."""
    w = witness()
    w.observe(note(12), 0, [])
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(note(30, FORK_LEAVES), 12, proof(12, 30, FORK_LEAVES))
    assert refused.value.reason == "inconsistent"


def test_proof_from_another_size_is_refused() -> None:
    """A proof that does not start where this witness stands proves nothing to it."""
    w = witness()
    w.observe(note(12), 0, [])
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(note(30), 10, proof(10, 30))
    assert refused.value.reason == "no_proof"


def test_checkpoint_signed_by_another_key_is_refused() -> None:
    """A checkpoint signed by anyone but the audit service (here an agency) is not cosigned."""
    w = witness()
    forged = note(10, key=RINGS["sc-luzhou"].signer(REGISTRY, REGISTRY.issued_at)[1])
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(forged, 0, [])
    assert refused.value.reason == "bad_checkpoint_signature"


def test_restarted_witness_continues_from_its_state_and_refuses_a_rollback(tmp_path: Path) -> None:
    """The state saved after a cosignature is what a restarted witness holds: it extends it
    and refuses to go back below it."""
    path = tmp_path / "sc-zigong.json"
    first = witness()
    first.observe(note(20), 0, [])
    first.state.save(path)
    again = witness(state=WitnessState.load(path))
    assert (again.state.size, again.state.root) == (20, base64.b64encode(tree_root(20)).decode())
    again.observe(note(33), 20, proof(20, 33))
    with pytest.raises(WitnessRefusedError) as refused:
        again.observe(note(25), 0, [])
    assert refused.value.reason == "rollback"


def test_another_witness_cosigning_a_second_root_is_a_split_view() -> None:
    """Shown one history, a witness that reads another witness's cosignature of the same size
    with another root detects the split view it was not shown."""
    mine, theirs = witness("sc-zigong"), witness("cq-dazu")
    mine.observe(note(30), 0, [])
    cosigned_elsewhere = theirs.observe(note(30, FORK_LEAVES), 0, [])
    with pytest.raises(WitnessRefusedError) as refused:
        mine.compare(cosigned_elsewhere)
    assert refused.value.reason == "equivocation"
    assert refused.value.against == note(30)
    mine.compare(witness("cq-rongchang").observe(note(30), 0, []))  # the same root: no alarm


def test_policy_counts_distinct_agencies_and_ignores_forged_lines() -> None:
    """Five agencies' cosignatures meet a 5-of-8 policy, four do not; a line that claims a
    witness but does not verify, or a second line of one agency, adds nothing."""
    cp = Checkpoint(ORIGIN, 30, tree_root(30))
    lines = []
    for agency in list(REGISTRY.voters)[:5]:
        lines += signature_lines(witness(agency).observe(note(30), 0, []))
    assert witnessed(cp, lines, REGISTRY).enough
    four = [line for line in lines if not line.startswith(f"— {witness_name(REGISTRY.voters[4])} ")]
    assert not witnessed(cp, four, REGISTRY).enough
    forged = f"— {witness_name(REGISTRY.voters[4])} " + base64.b64encode(bytes(76)).decode()
    assert not witnessed(cp, [*four, forged, four[-1]], REGISTRY).enough


def test_cosignature_vectors_regenerate_and_verify() -> None:
    """schemas/vectors/cosignature-v1.json is what the code builds (run `jointbus schemas
    vectors`), and each cosignature line verifies under the published public key."""
    document = json.loads((VECTORS_DIR / COSIGNATURE_FILE).read_text(encoding="utf-8"))
    assert document == build()
    body = document["checkpoint_body"].split("\n")
    cp = Checkpoint(body[0], int(body[1]), base64.b64decode(body[2]))
    for cosigner in document["cosigners"]:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(cosigner["public_key_base64"]))
        private = Ed25519PrivateKey.from_private_bytes(seed(cosigner["kid"]))
        assert private.public_key().public_bytes_raw() == public.public_bytes_raw()
        found = verify_cosignature(cosigner["signature_line"], cp, cosigner["name"], public)
        assert found is not None
        assert found.timestamp == document["timestamp"]
        assert cosigner["signature_line"] in document["cosigned_note"]
    docs = (Path(__file__).resolve().parent.parent / "docs" / "witnesses.md").read_text(encoding="utf-8")
    assert f"```\n{document['cosigned_note']}```" in docs, "docs/witnesses.md shows another example"


def test_hostile_notes_are_refused_not_crashed_on() -> None:
    """A size in other digits (² parses as a digit), extension lines, or a note padded past
    any alert's size: refused as not the log's checkpoint, never an exception that would
    stop the witness."""
    good = note(10)
    body, _, sigs = good.partition("\n\n")
    lines = body.split("\n")
    for hostile in (
        good.replace("\n10\n", "\n1²\n", 1),
        f"{body}\nextension line\n\n{sigs}",
        f"{lines[0]}\n{'9' * 30}\n{lines[2]}\n\n{sigs}",
    ):
        with pytest.raises(WitnessRefusedError) as refused:
            witness().observe(hostile, 0, [])
        assert refused.value.reason == "bad_checkpoint_signature"
    w = witness()
    w.observe(note(30), 0, [])
    forked = sign_checkpoint(Checkpoint(ORIGIN, 30, tree_root(30, FORK_LEAVES)), AUDIT_KEY)
    padded = forked + "".join(f"— someone-else/{i} {'A' * 80}\n" for i in range(60))
    with pytest.raises(WitnessRefusedError) as refused:
        w.observe(padded, 30, [])
    assert len(refused.value.note) < 2000  # the evidence fits the alert: it is sent, not silenced
    from jointbus.schemas.families.log import LogEquivocation
    from jointbus.witnesscli import alert_payload

    family, payload = alert_payload(refused.value)
    assert family == "log.equivocation"
    LogEquivocation.from_json(payload)
    assert len(padded) > 2000  # as received, the note would not have fitted


def test_a_policy_below_a_majority_still_needs_a_majority() -> None:
    """witness_quorum 1 of 8 would let two views each be 'witnessed': a majority is the floor."""
    lenient = REGISTRY.model_copy(update={"policy": REGISTRY.policy.model_copy(update={"witness_quorum": 1})})
    cp = Checkpoint(ORIGIN, 30, tree_root(30))
    lines = []
    for agency in list(REGISTRY.voters)[:4]:
        lines += signature_lines(witness(agency).observe(note(30), 0, []))
    found = witnessed(cp, lines, lenient)
    assert (found.required, found.enough) == (5, False)


def test_a_witness_behind_by_a_checkpoint_finds_its_own_proof_in_the_record() -> None:
    """A witness that stands at 10 (it missed the checkpoint of 20) reads the checkpoint of
    30: the record proves from 20, and also from its recent predecessors, 10 among them."""
    import json as jsonlib

    from jointbus.audit.witness import proof_of
    from jointbus.streams.topics import (
        CONSISTENCY_FROM_HEADER,
        CONSISTENCY_PROOF_HEADER,
        CONSISTENCY_PROOFS_HEADER,
    )

    def b64(hashes: list[bytes]) -> list[str]:
        return [base64.b64encode(h).decode() for h in hashes]

    offered = jsonlib.dumps({"20": b64(proof(20, 30)), "10": b64(proof(10, 30))}).encode()
    headers = [
        (CONSISTENCY_FROM_HEADER, b"20"),
        (CONSISTENCY_PROOF_HEADER, "\n".join(b64(proof(20, 30))).encode()),
        (CONSISTENCY_PROOFS_HEADER, offered),
    ]
    w = witness()
    w.observe(note(10), 0, [])
    assert proof_of(headers, 0)[0] == 20
    w.observe(note(30), *proof_of(headers, w.state.size))
    assert w.state.size == 30


def test_forged_cosignature_lines_are_skipped_by_every_reader(tmp_path: Path) -> None:
    """What sc-zigong can put on its own witness's topic (the only one it may write): a
    note with a forged sc-luzhou line, cq-dazu's genuine line copied in, its own line
    broken, no value, bytes that are not UTF-8, a note padded to 100 KB. Every reader cuts
    a record to the topic owner's line (``owned_note``, which the witnesses, the console,
    `audit verify/prove`, export and the demo share): nothing counts for another agency,
    nothing raises, and a real sc-zigong cosignature still counts."""
    from jointbus.audit.cosign import WITNESS_PREFIX
    from jointbus.audit.cosigned import owned_note
    from jointbus.audit.export import read_cosignatures
    from jointbus.audit.witnessing import cosignature_lines

    cp = Checkpoint(ORIGIN, 10, tree_root(10))
    own = witness("sc-zigong").observe(note(10), 0, [], now=1_800_000_000)
    dazu_line = signature_lines(witness("cq-dazu").observe(note(10), 0, [], now=1_800_000_000))[-1]
    own_line = signature_lines(own)[-1]
    forged_luzhou = f"— {WITNESS_PREFIX}sc-luzhou {base64.b64encode(bytes(76)).decode()}"
    broken_own = own_line[:-8] + "AAAAAAA="
    hostile: list[bytes | None] = [
        None,
        b"",
        b"\xff\xfe\x00",
        (note(10) + forged_luzhou + "\n").encode(),
        (note(10) + dazu_line + "\n").encode(),
        (note(10) + dazu_line + "\u2028" + forged_luzhou + "\n").encode(),
        (note(10) + broken_own + "\n" + dazu_line + "\n").encode(),
        (own + "— x " + "A" * 100_000 + "\n").encode(),
    ]
    cut = [owned_note("sc-zigong", value) for value in hostile]
    assert cut[:3] == [None, None, None]
    assert cut[3:6] == [None, None, None]  # no line of the topic's owner: passed over
    assert cut[7] is None  # over a note's size
    assert cut[6] is not None
    assert dazu_line not in cut[6]
    assert witnessed(cp, cosignature_lines(cp, [c for c in cut if c]), REGISTRY).agencies == ()
    honest = owned_note("sc-zigong", own.encode())
    assert honest is not None
    notes = [honest, *(c for c in cut if c)]
    assert witnessed(cp, cosignature_lines(cp, notes), REGISTRY).agencies == ("sc-zigong",)
    # the same bytes copied into cq-dazu's own topic count for cq-dazu only when they are its line
    assert owned_note("cq-dazu", (note(10) + dazu_line + "\n").encode()) is not None
    # a witness compares what others' topics hold without raising on any of it
    other = witness("cq-yongchuan")
    other.observe(note(10), 0, [])
    for c in cut:
        if c is not None:
            other.compare(c)
    # an export's cosignatures.jsonl: rows of any shape, each cut as its topic's owner
    rows = [
        json.dumps({"agency": "sc-zigong", "note": (note(10) + dazu_line + "\n")}),
        json.dumps({"agency": "sc-zigong", "note": own}),
        json.dumps([1, 2]),
        json.dumps({"agency": 5, "note": 7}),
        "not json",
    ]
    (tmp_path / "cosignatures.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    exported = read_cosignatures(tmp_path)
    assert exported == [honest]
