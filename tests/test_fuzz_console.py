"""The console's model of the log and every cosignature reader under fuzzing: whatever a
record of ``jointbus.audit`` holds (a rejected event is kept as it was sent: any JSON in any
field), the console folds it into an entry and its pages' figures; whatever bytes sit on a
witness's cosignature topic, every reader decides them (kept, or passed over) and never
raises. Targets ``console-record`` and ``cosignature-line`` (tests/fuzzing.py)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jointbus.audit.cosign import WITNESS_PREFIX, signature_lines
from jointbus.audit.cosigned import owned_note
from jointbus.audit.export import read_cosignatures
from jointbus.audit.notes import ORIGIN, Checkpoint
from jointbus.audit.witness import Witness, WitnessRefusedError, WitnessState
from jointbus.audit.witnessing import cosignature_lines, witnessed
from jointbus.console import figures
from jointbus.console.state import LogState
from jointbus.schemas.ids import format_time
from jointbus.schemas.records import AuditRecord
from tests.fuzzing import examples, fuzz_target, keep
from tests.test_console_app import FIELDS, hostile_records, the_log
from tests.test_projections import NOW
from tests.test_projections import REGISTRY as CONSOLE_REGISTRY
from tests.test_witness import REGISTRY, RINGS, note, tree_root

HONEST = [r.to_bytes() for r in the_log()]
SEVENTEEN = b'{"recipients": 5}'
CHECKPOINT = Checkpoint(ORIGIN, 10, tree_root(10))
AGENCIES = ("sc-zigong", "cq-dazu")


def cosigned(agency: str, size: int = 10) -> str:
    """A real cosigned note: ``agency``'s witness cosigns the audit key's checkpoint."""
    return Witness.of(RINGS[agency], REGISTRY, WitnessState()).observe(note(size), 0, [], now=1_800_000_000)


def kept_on_failure(name: str, run: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``run``, keeping an input it raises on as a regression file of target ``name``."""

    def checked(data: bytes) -> None:
        try:
            run(data)
        except BaseException:
            keep(name, data)
            raise

    return checked


def record_seeds() -> list[bytes]:
    rejected = AuditRecord(
        position="jointbus.outbox.sc-zigong:0:7",
        received_at=format_time(NOW),
        decision="rejected",
        reason="schema",
        sender="sc-zigong",
        event=json.loads(SEVENTEEN),
    )
    return [*HONEST, rejected.to_bytes(), *hostile_records()[:12]]


@fuzz_target("console-record", seeds=record_seeds)
def fold_into_the_console(value: bytes) -> None:
    """An audit record value, as read from ``jointbus.audit``, folded into the console's
    model beside honest records; then every page's figures of the whole log and of a
    period. Nothing raises."""
    state = LogState(CONSOLE_REGISTRY)
    for offset, honest in enumerate(HONEST[:4]):
        state.add(offset, honest)
    state.add(len(HONEST), value)
    since = format_time(NOW - timedelta(days=1))
    for period in ((None, None), (since, None)):
        projection, entries = state.period(*period)
        figures.overview(projection)
        figures.flow(projection, entries)
        figures.deadlines(state, projection, entries, NOW + timedelta(days=10))
        figures.series(state, *period)
    for entry in state.entries:
        assert all(isinstance(r, str) for r in entry.recipients)
        assert isinstance(entry.type, str)
        assert isinstance(entry.subject, str)
        entry.family  # noqa: B018 (computed from the type: must not raise either)


EXPORTS = Path(tempfile.mkdtemp(prefix="jointbus-fuzz-export-"))


@fuzz_target("cosignature-line", seeds=lambda: [cosigned(a).encode() for a in AGENCIES])
def read_a_cosignature_record(value: bytes) -> None:
    """A record of a witness's cosignature topic through every reader's parse: the bounded
    cut (``owned_note``, what the witnesses, the console, ``audit verify/prove``, export and
    the demo read), the lines' verification, a witness's comparison with what it cosigned,
    and an export's ``cosignatures.jsonl``. Only the topic owner's line may ever count."""
    texts: list[str] = []
    for agency in AGENCIES:
        cut = owned_note(agency, value)
        if cut is not None:
            assert len(cut) <= len(value.decode("utf-8")) + 2
            others = [line for line in signature_lines(cut) if line.startswith(f"— {WITNESS_PREFIX}")]
            assert len(others) == 1
            assert others[0].startswith(f"— {WITNESS_PREFIX}{agency} ")
            found = witnessed(CHECKPOINT, cosignature_lines(CHECKPOINT, [cut]), REGISTRY)
            assert set(found.agencies) <= {agency}
            texts.append(cut)
    witness = Witness.of(RINGS["cq-yongchuan"], REGISTRY, WitnessState())
    witness.observe(note(10), 0, [], now=1_800_000_000)
    for text in texts:
        try:
            witness.compare(text)
        except WitnessRefusedError as refusal:  # a typed refusal: a split view, with evidence
            if refusal.reason != "equivocation":
                raise
    raw = value.decode("utf-8", errors="replace")
    witnessed(CHECKPOINT, cosignature_lines(CHECKPOINT, [raw]), REGISTRY)  # a bundle of old
    folder = EXPORTS / "bundle"
    folder.mkdir(exist_ok=True)
    rows = [json.dumps({"agency": "sc-zigong", "note": raw}), json.dumps({"note": raw}), raw]
    (folder / "cosignatures.jsonl").write_bytes(
        "\n".join(rows).encode("utf-8", errors="replace") + b"\n" + value
    )
    for text in read_cosignatures(folder):
        witnessed(CHECKPOINT, cosignature_lines(CHECKPOINT, [text]), REGISTRY)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
EVENT_FIELDS = st.sampled_from((*FIELDS, "id", "source", "time", "specversion"))
TYPES = st.sampled_from(
    (
        "org.jointbus.clue.transferred.v2",
        "org.jointbus.deadline.overdue.v1",
        "org.jointbus.mechanism.established.v1",
        "org.jointbus.receipt.v1",
        "org.jointbus.rectification.issued.v1",
    )
)


@st.composite
def records(draw: Any) -> bytes:
    """An audit record of any decision whose ``event`` and ``notice`` hold arbitrary JSON,
    sometimes under a real type (so each kind's figures see it)."""
    event = draw(st.dictionaries(EVENT_FIELDS, JSON, max_size=8))
    if draw(st.booleans()):
        event["type"] = draw(TYPES)
    record = {
        "position": f"jointbus.outbox.sc-zigong:0:{draw(st.integers(0, 10**6))}",
        "received_at": format_time(NOW + timedelta(days=draw(st.integers(0, 9)))),
        "decision": draw(st.sampled_from(("accepted", "rejected", "emitted", "quarantined"))),
        "sender": draw(st.sampled_from(("sc-zigong", "cq-dazu", "nobody", None))),
        "event_id": draw(st.none() | st.text(max_size=10)),
        "event": event,
        "notice": draw(st.none() | st.dictionaries(st.sampled_from(("type", "id")), JSON, max_size=2)),
        "delivered_to": draw(st.lists(st.sampled_from(("sc-zigong", "cq-dazu")), max_size=2)),
    }
    return json.dumps(record).encode()


@examples(200)
@given(records())
def test_a_record_with_any_json_event_folds_into_the_console(value: bytes) -> None:
    kept_on_failure("console-record", fold_into_the_console)(value)


@examples(200)
@given(st.sampled_from(record_seeds()), st.binary(max_size=16), st.integers(0, 2000))
def test_a_mutated_real_record_folds_into_the_console(seed: bytes, splice: bytes, at: int) -> None:
    at %= len(seed) + 1
    kept_on_failure("console-record", fold_into_the_console)(seed[:at] + splice + seed[at + len(splice) :])


LINES = st.one_of(
    st.sampled_from(
        [line for a in ("sc-zigong", "cq-dazu", "sc-luzhou") for line in signature_lines(cosigned(a))]
    ),
    st.builds(
        lambda who, blob: f"— {WITNESS_PREFIX}{who} {blob}", st.sampled_from(AGENCIES), st.text(max_size=110)
    ),
    st.text(max_size=60),
)


@examples(200)
@given(
    st.sampled_from([note(10), note(11), note(10).replace("\n10\n", "\n1²\n")]),
    st.lists(LINES, max_size=8),
    st.sampled_from(("\n", "\r\n", "\u2028", "\n\n")),
)
def test_a_cosigned_note_of_any_structure_is_decided_by_every_reader(
    base: str, lines: list[str], sep: str
) -> None:
    value = (base + sep.join(lines) + "\n").encode("utf-8", errors="surrogatepass")
    kept_on_failure("cosignature-line", read_a_cosignature_record)(value)


@examples(200)
@given(
    st.binary(max_size=300) | st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(max_size=200))
)
def test_any_bytes_on_a_cosignature_topic_are_decided(value: bytes) -> None:
    kept_on_failure("cosignature-line", read_a_cosignature_record)(value)
