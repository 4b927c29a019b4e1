"""``jointbus verify`` and ``jointbus conformance ...``: check events and implementations
against the wire contract, offline.

- ``verify FILE...`` decides envelopes as the router would (in order, so earlier files are
  the history), or verifies and opens them as a recipient (``--open-as``);
- ``conformance run -- CMD`` sends the conformance suite to another implementation's
  verifier over its stdin and compares its verdicts (docs/conformance.md);
- ``conformance verifier`` is jointbus's own verifier speaking that protocol;
- ``conformance list`` shows the cases.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from jointbus import context, ui
from jointbus.schemas.b64 import b64d
from jointbus.schemas.conformance import (
    ReferenceBus,
    Suite,
    Verdict,
    compare,
    input_lines,
    load_suite,
    serve,
)
from jointbus.schemas.envelope import parse_wire
from jointbus.schemas.errors import ContractError, JointbusError, Reason
from jointbus.schemas.ids import format_time, utcnow
from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore


class UsageError(JointbusError):
    """A command given something it cannot use (a file, a key, a time)."""

    reason = "usage"


# ----------------------------------------------------------------------------------- verify
def _registry(path: Path | None) -> Registry:
    if path is None:
        return keystore.load_registry(context.settings().keystore_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the registry {path}: {exc.strerror}") from None
    try:
        return Registry.model_validate_json(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not a registry: {str(exc)[:300]}") from None


def _arrival(text: str | None) -> tuple[datetime, str]:
    if text is None:
        now = utcnow()
        return now, f"{format_time(now)} (now)"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r} has no zone: write Z or an offset")
    return moment.astimezone(UTC), format_time(moment)


def _opening_key(key: Path, agency: str, wire: bytes) -> tuple[str, str]:
    """(kid, raw private key) to open ``wire`` as ``agency``: ``key`` is the agency's
    keyring file or a file holding one raw X25519 private key (base64url)."""
    try:
        text = key.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read {key}: {exc.strerror}") from None
    envelope = _bounded(wire)
    try:
        wraps = [w for w in envelope["data"]["recipients"] if w.get("agency") == agency]
    except (KeyError, TypeError, AttributeError):
        wraps = []
    if text.startswith("{"):
        ring = Keyring.model_validate_json(text)
        held = [str(w["kid"]) for w in wraps if w.get("kid") in ring.keys]
        sealing = held or [k for k in ring.keys if "#seal-" in k]
        if not sealing:
            raise UsageError(f"{key} holds no sealing key")
        return sealing[0], ring.keys[sealing[0]]
    try:
        b64d(text, what="private key")
    except ContractError:
        raise UsageError(f"{key} holds neither a keyring nor a base64url private key") from None
    return (str(wraps[0]["kid"]) if wraps else f"{agency}#seal-1"), text


def _bounded(wire: bytes) -> Any:
    """The JSON value of ``wire`` within the wire's bounds (size, structure, depth), else
    None: what the table shows of a record is read as cheaply as the verdict is."""
    try:
        return parse_wire(wire)[0]
    except ContractError:
        return None


def _summary(wire: bytes) -> tuple[str, str, str]:
    env = _bounded(wire)
    if not isinstance(env, dict):
        return "?", "?", "?"
    return tuple(  # type: ignore[return-value]
        str(env.get(name, "?"))[:80].removeprefix("urn:jointbus:") for name in ("type", "source", "id")
    )


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="registry.json (default: the local keystore's)",
)
@click.option(
    "--at",
    "at",
    help="the arrival time, RFC 3339 (default: now); revocation and clock skew are judged against it",
)
@click.option(
    "--outbox", help="route: the agency whose outbox the events arrived on (default: each event's sender)"
)
@click.option(
    "--producer-time",
    is_flag=True,
    help="route: the arrival time was chosen by the producer (refused: untrusted_time)",
)
@click.option("--open-as", "open_as", help="verify as this recipient agency and open sealed payloads")
@click.option(
    "--key",
    "key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="with --open-as: its keyring file or a file holding its raw X25519 private key (base64url)",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON verdict per line")
def verify_command(
    files: tuple[Path, ...],
    registry_path: Path | None,
    at: str | None,
    outbox: str | None,
    producer_time: bool,
    open_as: str | None,
    key: Path | None,
    as_json: bool,
) -> None:
    """Decide FILES (one envelope each; - for stdin) as the router would, in order: earlier
    files are the history (duplicates, lifecycle, registry changes). With --open-as and
    --key, verify them as that recipient and open sealed payloads instead.

    Exit status 0 when every event is accepted, 1 when one is rejected."""
    if (open_as is None) != (key is None):
        raise UsageError("--open-as and --key go together")
    moment, shown = _arrival(at)
    registry = _registry(registry_path)
    bus = ReferenceBus(registry, moment)
    rows: list[tuple[str, Verdict, bytes]] = []
    for path in files:
        wire = sys.stdin.buffer.read() if str(path) == "-" else _read(path)
        if open_as is not None and key is not None:
            kid, private = _opening_key(key, open_as, wire)
            verdict = bus.receive(wire, open_as, kid, private)
        else:
            sender = _summary(wire)[1]
            verdict = bus.route(wire, outbox or sender, log_append_time=not producer_time)
        rows.append((str(path), verdict, wire))
    if as_json:
        for name, verdict, _ in rows:
            ui.json_line({"file": name} | verdict.as_json())
    else:
        mode = f"opened as {open_as}" if open_as else "decided as the router would"
        ui.table(
            f"{len(rows)} event(s) {mode}, under registry v{registry.version}, arriving {shown}",
            ["file", "verdict", "reason", "type", "sender", "id", "why"],
            [(name, v.verdict, v.reason or "", *_summary(wire), v.detail[:100]) for name, v, wire in rows],
        )
        for name, verdict, _ in rows:
            if verdict.payload is not None and open_as:
                ui.say(f"{name}: " + json.dumps(verdict.payload, ensure_ascii=False, indent=2))
    if any(v.verdict != "accepted" for _, v, _ in rows):
        sys.exit(1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


# ------------------------------------------------------------------------------ conformance
@click.group("conformance")
def conformance_group() -> None:
    """The conformance suite: check an implementation of the wire contract against it."""


suite_opt = click.option(
    "--suite",
    "suite_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="the suite file (default: schemas/vectors/conformance-v1.json as installed)",
)
only_opt = click.option(
    "--case", "only", multiple=True, help="only cases whose name starts with this (repeatable)"
)


def _suite(path: Path | None, only: tuple[str, ...]) -> Suite:
    try:
        suite = load_suite(path)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot read the suite: {str(exc)[:300]}") from None
    if only:
        suite.cases = [c for c in suite.cases if c.name.startswith(only)]
        if not suite.cases:
            raise UsageError(f"no case starts with {', '.join(only)}")
    return suite


@conformance_group.command("run")
@suite_opt
@only_opt
@click.option("--timeout", default=600.0, show_default=True, help="seconds the verifier may take")
@click.option("--show", default=40, show_default=True, help="how many disagreements to list")
@click.argument("command", nargs=-1, required=True)
def run_command(
    suite_path: Path | None, only: tuple[str, ...], timeout: float, show: int, command: tuple[str, ...]
) -> None:
    """Send every step of the suite to COMMAND (after --) as JSON lines on its stdin, read
    its verdicts as JSON lines from its stdout, and list every disagreement.

    Exit status 0 when the verifier agrees on every step, 1 otherwise."""
    suite = _suite(suite_path, only)
    lines = [json.dumps(line, ensure_ascii=False) for line in input_lines(suite)]
    ui.err.print(f"sending {len(lines)} steps of {len(suite.cases)} cases to {' '.join(command)} ...")
    try:
        done = subprocess.run(
            command,
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError(f"no such command: {command[0]}") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"{command[0]} gave no complete answer within {timeout:.0f} s") from None
    verdicts, unreadable = _verdicts(done.stdout)
    if done.returncode != 0 and not verdicts:
        raise UsageError(f"{command[0]} exited with status {done.returncode}: {done.stderr.strip()[-300:]}")
    agreed, mismatches = compare(suite, verdicts)
    total = agreed + len(mismatches)
    if mismatches:
        ui.table(
            f"{len(mismatches)} of {total} steps disagree with the suite",
            ["case", "step", "expected", "got", "its detail", "what the rule stops"],
            [
                (
                    m.case,
                    m.step,
                    _shown(m.expected),
                    _shown(m.got),
                    m.got.detail[:60] if m.got else "",
                    m.attack[:70],
                )
                for m in mismatches[:show]
            ],
        )
        if len(mismatches) > show:
            ui.say(f"... and {len(mismatches) - show} more (--show N lists more)")
    if unreadable:
        ui.fail(
            f"{unreadable} output line(s) were not verdicts: each is one JSON object with case, step, verdict"
        )
    if done.returncode != 0:
        ui.fail(f"{command[0]} exited with status {done.returncode}: {done.stderr.strip()[-300:]}")
    failed_cases = len({m.case for m in mismatches})
    ui.say(
        f"{agreed} of {total} steps agree; {len(suite.cases) - failed_cases} of {len(suite.cases)} cases pass"
    )
    if mismatches or done.returncode != 0:
        sys.exit(1)


def _verdicts(stdout: str) -> tuple[list[dict[str, Any]], int]:
    verdicts, unreadable = [], 0
    for text in stdout.splitlines():
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError:
            unreadable += 1
            continue
        if (
            isinstance(value, dict)
            and isinstance(value.get("case"), str)
            and isinstance(value.get("step"), int)
        ):
            verdicts.append(value)
        else:
            unreadable += 1
    return verdicts, unreadable


def _shown(verdict: Verdict | None) -> str:
    if verdict is None:
        return "(no answer)"
    shown = verdict.verdict + (f" {verdict.reason}" if verdict.reason else "")
    return shown + (" + payload" if verdict.payload is not None else "")


@conformance_group.command("verifier")
def verifier_command() -> None:
    """jointbus's own verifier: suite steps in on stdin, verdicts out on stdout (the
    protocol ``conformance run`` speaks; a model for another implementation's)."""
    for verdict in serve(sys.stdin):
        ui.json_line(verdict)


@conformance_group.command("show")
@suite_opt
@click.argument("name")
@click.option("--step", "step_index", type=int, default=None, help="with --wire: which step (default 0)")
@click.option("--wire", is_flag=True, help="write the step's exact bytes to stdout (for `jointbus verify`)")
def show_command(suite_path: Path | None, name: str, step_index: int | None, wire: bool) -> None:
    """One case in full: its rule, each step's envelope (parsed when it is JSON) and the
    verdict the suite expects; with --wire, one step's exact bytes and nothing else."""
    suite = _suite(suite_path, (name,))
    case = next((c for c in suite.cases if c.name == name), suite.cases[0])
    if wire:
        index = step_index or 0
        if not 0 <= index < len(case.steps):
            raise UsageError(f"{case.name} has steps 0 to {len(case.steps) - 1}")
        sys.stdout.buffer.write(case.steps[index].wire)
        sys.stdout.buffer.flush()
        return
    ui.say(f"{case.name} — {case.rule}: {case.attack}")
    ui.say(f"registry {case.registry!r}, every step arriving {case.received_at}")
    for index, step in enumerate(case.steps):
        where = f"outbox {step.outbox}" if step.action == "route" else f"opened as {step.agency} ({step.kid})"
        ui.say(f"\nstep {index}: {step.action}, {where}; expected {_shown(step.expect)}")
        shown = _readable(step.wire)
        ui.say(shown if len(shown) < 6000 else shown[:6000] + "\n ...")


def _readable(wire: bytes) -> str:
    """Indented JSON when nothing is lost by parsing (the fault may be in the very bytes:
    ``-0``, a duplicate key, bad UTF-8); the bytes as they are otherwise."""
    value = _bounded(wire)
    if value is not None and json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() == wire:
        return json.dumps(value, ensure_ascii=False, indent=2)
    text = wire.decode("utf-8", errors="backslashreplace")
    return text[:3000] + (" ..." if len(text) > 3000 else "")


@conformance_group.command("list")
@suite_opt
@only_opt
def list_command(suite_path: Path | None, only: tuple[str, ...]) -> None:
    """The cases: name, rule, steps and the verdict of the last step."""
    suite = _suite(suite_path, only)
    ui.table(
        f"{len(suite.cases)} cases",
        ["case", "rule", "steps", "last step", "what it stops"],
        [(c.name, c.rule, len(c.steps), _shown(c.steps[-1].expect), c.attack[:70]) for c in suite.cases],
    )
    reasons = sorted(set().union(*(c.reasons for c in suite.cases)))
    ui.say(f"reason codes covered: {', '.join(reasons)} (not {Reason.INTERNAL}: no input yields it)")
