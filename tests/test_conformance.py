"""The conformance suite (schemas/vectors/conformance-v1.json): jointbus keeps every case, the
suite covers every reason code, event type and lifecycle rule, the runner tells a faithful
verifier from a wrong one, and ``jointbus verify`` gives every case's verdict offline."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jointbus.cli import cli
from jointbus.schemas.b64 import b64e
from jointbus.schemas.catalog import CATALOG
from jointbus.schemas.conformance import SUITE_FILE, VECTORS_DIR, Case, load_suite, reference_verdicts
from jointbus.schemas.conformance_build import build_suite, render_suite
from jointbus.schemas.errors import Reason
from jointbus.schemas.forge import Forge
from jointbus.schemas.jsonschema import documents
from jointbus.schemas.transitions import markdown, tables
from jointbus.schemas.vectors import WIRE_FILE, build, render, seed, vector_federation
from tests.harness import run_jointbus

ROOT = Path(__file__).resolve().parent.parent
SUITE = load_suite()
DOCUMENT = json.loads((VECTORS_DIR / SUITE_FILE).read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", SUITE.cases, ids=[c.name for c in SUITE.cases])
def test_jointbus_keeps_every_case(case: Case) -> None:
    """Each step of the case gets exactly the verdict (and reason code, and opened payload)
    the suite states, from the router's and the recipient's own code paths."""
    got = reference_verdicts(case, SUITE.registries[case.registry])
    for index, (step, verdict) in enumerate(zip(case.steps, got, strict=True)):
        assert verdict.agrees_with(step.expect), (index, step.expect, verdict)


def test_every_reason_code_has_a_negative_case() -> None:
    """Every reason code of the wire format is the expected verdict of some case, but
    ``internal_error``, which no input yields (the router failed on a record)."""
    covered = set().union(*(c.reasons for c in SUITE.cases))
    assert covered == {r.value for r in Reason} - {Reason.INTERNAL.value}


def test_every_event_type_and_version_is_accepted_somewhere() -> None:
    """A positive case exists for every type of the catalog, old versions included."""
    accepted = set()
    for case in SUITE.cases:
        for step in case.steps:
            if step.expect.verdict == "accepted":
                accepted.add(json.loads(step.wire)["type"])
    assert set(CATALOG) <= accepted, sorted(set(CATALOG) - accepted)


def test_every_lifecycle_cell_is_a_case_and_matches_the_table_data() -> None:
    """Each (status, event type) of the tables is a case whose last verdict is the cell,
    and the ``lifecycle`` data of the file is the tables found by running the rules."""
    cells = tables(Forge(vector_federation()[0]))
    for kind, rows in cells.items():
        data = DOCUMENT["lifecycle"][kind]["transitions"]
        assert len(data) == len(rows)
        for cell, row in zip(rows, data, strict=True):
            assert (row["from"], row["event"]) == (cell.before, cell.move.family)
            assert row.get("to") == cell.after
            assert row.get("refused") == cell.reason
            name = f"lifecycle/{kind}/{cell.before or 'new'}/{cell.move.family.split('.', 1)[1]}"
            last = SUITE.case(name).steps[-1].expect
            assert (last.verdict == "accepted") == (cell.after is not None)
            assert last.reason == cell.reason


def test_event_ids_are_distinct_across_the_suite() -> None:
    """One id, one case: a verifier that keys anything by id is never confused across cases
    (within a case, an id recurs only where the case is about it: a replay, a receipt)."""
    cases_of: dict[str, set[str]] = {}
    for case in SUITE.cases:
        for step in case.steps:
            try:
                env = json.loads(step.wire)
            except ValueError:
                continue
            if isinstance(env, dict) and isinstance(env.get("id"), str):
                cases_of.setdefault(env["id"], set()).add(case.name)
    shared = {i: names for i, names in cases_of.items() if len(names) > 1}
    assert not shared, shared


def test_suite_and_vectors_regenerate_byte_for_byte() -> None:
    """The shipped files are what the code builds (run `jointbus schemas vectors`); sealed
    payloads are reused from the files, so HPKE's randomness does not churn them."""
    _, document = build_suite(DOCUMENT)
    assert render_suite(document) == (VECTORS_DIR / SUITE_FILE).read_text(encoding="utf-8")
    wire = json.loads((VECTORS_DIR / WIRE_FILE).read_text(encoding="utf-8"))
    assert render(build(wire)) == (VECTORS_DIR / WIRE_FILE).read_text(encoding="utf-8")


def _nulls(value: Any, where: str = "") -> list[str]:
    if isinstance(value, dict):
        found = [where] if value.get("type") == "null" or value.get("const", 0) is None else []
        if "default" in value and value["default"] is None:
            found.append(f"{where}.default")
        types = value.get("type")
        if isinstance(types, list) and "null" in types:
            found.append(where)
        return found + [n for k, v in value.items() for n in _nulls(v, f"{where}/{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{where}/{i}")]
    return []


def test_json_schemas_never_allow_null() -> None:
    """The text says optional fields are omitted, never null: no schema allows a null (and
    jointbus refuses one: the null-field and null-causationid cases)."""
    for name, doc in documents().items():
        assert _nulls(doc) == [], name
    on_disk = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "schemas" / "json").glob("*.json")
    }
    assert all(_nulls(doc) == [] for doc in on_disk.values())


def test_wire_format_tables_are_the_rules() -> None:
    """docs/wire-format.md holds the lifecycle tables generated from the rules (run
    `jointbus schemas write` after changing a transition)."""
    text = (ROOT / "docs" / "wire-format.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- lifecycle:begin -->\n(.*?)<!-- lifecycle:end -->", text, re.S)
    assert match is not None, "docs/wire-format.md lost its lifecycle markers"
    assert match.group(1) == markdown(tables(Forge(vector_federation()[0])))


def test_runner_passes_a_faithful_verifier() -> None:
    """`conformance run` against jointbus's own line-protocol verifier: every step agrees."""
    done = run_jointbus(
        "conformance", "run", "--", sys.executable, "-m", "jointbus", "conformance", "verifier"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    total = sum(len(c.steps) for c in SUITE.cases)
    assert (
        f"{total} of {total} steps agree; {len(SUITE.cases)} of {len(SUITE.cases)} cases pass" in done.stdout
    )


def test_runner_catches_a_verifier_that_accepts_everything(tmp_path: Path) -> None:
    """A verifier that never refuses (the easiest wrong implementation) fails the suite:
    exit 1, its disagreements listed by case, the passing count below the total."""
    lenient = tmp_path / "lenient.py"
    lenient.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    step = json.loads(line)\n"
        "    print(json.dumps({'case': step['case'], 'step': step['step'], 'verdict': 'accepted'}))\n"
    )
    done = run_jointbus("conformance", "run", "--case", "signature/", "--", sys.executable, str(lenient))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "signature/recipient-added" in done.stdout
    assert "rejected bad_signature" in done.stdout
    assert "0 of 5 steps agree" in done.stdout
    assert "Traceback" not in done.stderr


def test_runner_says_when_the_verifier_cannot_start() -> None:
    """A missing command is one readable line, exit 2, not a traceback."""
    done = run_jointbus("conformance", "run", "--", "no-such-verifier-xyz")
    assert done.returncode == 2
    assert "no such command: no-such-verifier-xyz" in done.stderr
    assert "Traceback" not in done.stderr


def _verify_case(case: Case, directory: Path) -> list[dict[str, Any]]:
    """``jointbus verify`` on a case, in process: its route steps decided in order (one
    call), then each receive step verified and opened as its recipient."""
    registry = directory / "registry.json"
    registry.write_text(SUITE.registries[case.registry].model_dump_json(), encoding="utf-8")
    runner = CliRunner()
    verdicts: dict[int, dict[str, Any]] = {}
    routes = [(i, s) for i, s in enumerate(case.steps) if s.action == "route"]
    if routes:
        files = []
        for index, step in routes:
            path = directory / f"step-{index}.json"
            path.write_bytes(step.wire)
            files.append(str(path))
        args = ["verify", *files, "--registry", str(registry), "--at", case.received_at, "--json"]
        if not routes[0][1].log_append_time:
            args.append("--producer-time")
        outboxes = {str(s.outbox) for _, s in routes}
        if len(outboxes) == 1:  # otherwise each step arrives on its sender's outbox
            args += ["--outbox", outboxes.pop()]
        result = runner.invoke(cli, args, catch_exceptions=False)
        lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        assert len(lines) == len(routes), result.output
        verdicts |= {index: line for (index, _), line in zip(routes, lines, strict=True)}
    for index, step in enumerate(case.steps):
        if step.action != "receive":
            continue
        path, key = directory / f"step-{index}.json", directory / f"key-{index}"
        path.write_bytes(step.wire)
        key.write_text(str(step.private_key))
        args = ["verify", str(path), "--registry", str(registry), "--at", case.received_at, "--json"]
        result = runner.invoke(
            cli, [*args, "--open-as", str(step.agency), "--key", str(key)], catch_exceptions=False
        )
        verdicts[index] = json.loads(result.output.splitlines()[-1])
    return [verdicts[i] for i in range(len(case.steps))]


def test_verify_command_gives_every_cases_verdict(tmp_path: Path) -> None:
    """`jointbus verify` accepts every positive step and rejects every negative one with its
    stated code: the offline check an implementer runs on their own output."""
    for number, case in enumerate(SUITE.cases):
        directory = tmp_path / str(number)
        directory.mkdir()
        got = _verify_case(case, directory)
        for index, (step, answer) in enumerate(zip(case.steps, got, strict=True)):
            expected = step.expect.as_json()
            assert {k: answer.get(k) for k in expected} == expected, (case.name, index, answer)


def test_verify_command_explains_a_forged_event_to_a_person(tmp_path: Path) -> None:
    """Without --json: a table naming the verdict, reason and why; exit 1; no traceback.
    With --open-as and a keyring file: the opened clue is printed."""
    case = SUITE.case("signature/recipient-added")
    forged = tmp_path / "forged.json"
    forged.write_bytes(case.steps[0].wire)
    registry = tmp_path / "registry.json"
    registry.write_text(SUITE.registries["base"].model_dump_json(), encoding="utf-8")
    done = run_jointbus("verify", str(forged), "--registry", str(registry), "--at", case.received_at)
    assert done.returncode == 1, done.stderr
    assert "rejected" in done.stdout
    assert "bad_signature" in done.stdout
    assert "does not verify" in done.stdout
    assert "Traceback" not in done.stderr
    opens = SUITE.case("seal/opens")
    clue = tmp_path / "clue.json"
    clue.write_bytes(opens.steps[1].wire)
    ring = tmp_path / "cq-yongchuan.json"
    kid = "cq-yongchuan#seal-1"
    ring.write_text(json.dumps({"owner": "cq-yongchuan", "keys": {kid: b64e(seed(kid))}}))
    done = run_jointbus(
        "verify", str(clue), "--registry", str(registry), "--at", opens.received_at,
        "--open-as", "cq-yongchuan", "--key", str(ring),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted" in done.stdout
    assert "违规分包主体工程" in done.stdout


def test_verify_command_refuses_a_time_without_zone(tmp_path: Path) -> None:
    """An arrival time without a zone is two instants in two zones: refused, readably."""
    path = tmp_path / "e.json"
    path.write_bytes(SUITE.cases[0].steps[0].wire)
    done = run_jointbus("verify", str(path), "--at", "2026-03-01T08:30:01")
    assert done.returncode == 2
    assert "has no zone" in done.stderr


def test_show_wire_gives_the_exact_bytes_a_verifier_is_handed() -> None:
    """`conformance show CASE --step N --wire` writes the step's bytes as they are (the -0
    kept, nothing re-serialized), ready for `jointbus verify`."""
    case = SUITE.case("json/minus-zero")
    result = CliRunner().invoke(cli, ["conformance", "show", case.name, "--step", "0", "--wire"])
    assert result.exit_code == 0
    assert result.stdout_bytes == case.steps[0].wire
    assert b":-0" in result.stdout_bytes


def test_runner_says_when_the_verifier_fails_without_answering() -> None:
    """A verifier that exits with an error and answers nothing: its status and stderr, exit 2."""
    done = run_jointbus(
        "conformance", "run", "--", sys.executable, "-c", "import sys; sys.exit('no keys here')"
    )
    assert done.returncode == 2
    assert "exited with status 1: no keys here" in done.stderr
