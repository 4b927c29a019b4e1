"""The conformance suite as data, and jointbus's own verdicts on it.

A **case** starts from a registry and a moment of arrival and sends one or more **steps**
through a fresh bus:

- ``route``: wire bytes arrive on an agency's outbox (with the broker's append time, or,
  ``log_append_time: false``, a time the producer chose); the verdict is the router's:
  ``accepted``, or ``rejected`` with a reason code. Earlier steps of the case are the
  history (duplicates, lifecycle, registry changes);
- ``receive``: a recipient verifies the bytes and, when sealed, opens them with its
  private sealing key; the verdict is ``accepted`` with the plaintext payload, or
  ``rejected`` with a reason code.

A second implementation answers the same questions through a line protocol (one JSON
object per step in, one verdict per step out; docs/conformance.md), so
``jointbus conformance run -- <command>`` can compare any verifier to the expected
verdicts, and jointbus's tests hold jointbus to them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointbus.schemas.b64 import b64d
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.ids import parse_time
from jointbus.schemas.ledger import Ledger
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.opening import open_payload
from jointbus.schemas.registry import Registry
from jointbus.schemas.verify import verify_event

#: where the suite lives in the repository
VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
SUITE_FILE = "conformance-v1.json"

Action = Literal["route", "receive"]


@dataclass(frozen=True)
class Verdict:
    """What a verifier says of one step."""

    verdict: Literal["accepted", "rejected"]
    reason: str | None = None
    payload: dict[str, Any] | None = None  # ``receive``: the opened (or plain) payload
    detail: str = field(default="", compare=False)  # for people; never compared

    @classmethod
    def rejected(cls, reason: str, detail: str = "") -> Verdict:
        return cls("rejected", reason, detail=detail)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.payload is not None:
            out["payload"] = self.payload
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        verdict = data.get("verdict")
        if verdict not in ("accepted", "rejected"):
            raise ValueError(f"verdict must be 'accepted' or 'rejected', not {verdict!r}")
        reason, payload = data.get("reason"), data.get("payload")
        return cls(
            verdict,
            reason if isinstance(reason, str) else None,
            payload if isinstance(payload, dict) else None,
        )

    def agrees_with(self, expected: Verdict) -> bool:
        """Same verdict and reason; for an accepted ``receive``, the same payload too."""
        if (self.verdict, self.reason) != (expected.verdict, expected.reason):
            return False
        return expected.payload is None or self.payload == expected.payload


@dataclass(frozen=True)
class Step:
    """One input to the bus and the verdict the contract requires."""

    action: Action
    wire: bytes
    expect: Verdict
    outbox: str | None = None  # route: the agency whose outbox the record arrived on
    log_append_time: bool = True  # route: False when the producer chose the record's time
    agency: str | None = None  # receive: who opens
    kid: str | None = None  # receive: the sealing key's id
    private_key: str | None = None  # receive: its raw X25519 private key, base64url
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        try:
            out["wire"] = self.wire.decode("utf-8")
        except UnicodeDecodeError:
            out["wire_base64"] = base64.b64encode(self.wire).decode()
        if self.action == "route":
            out["outbox"] = self.outbox
            if not self.log_append_time:
                out["log_append_time"] = False
        else:
            out |= {"agency": self.agency, "kid": self.kid, "private_key": self.private_key}
        if self.note:
            out["note"] = self.note
        out["expect"] = self.expect.as_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        wire = data["wire"].encode("utf-8") if "wire" in data else base64.b64decode(data["wire_base64"])
        return cls(
            action=data["action"],
            wire=wire,
            expect=Verdict.from_json(data["expect"]),
            outbox=data.get("outbox"),
            log_append_time=data.get("log_append_time", True),
            agency=data.get("agency"),
            kid=data.get("kid"),
            private_key=data.get("private_key"),
            note=data.get("note", ""),
        )


@dataclass(frozen=True)
class Case:
    """Steps sent, in order, through a fresh bus whose registry is ``registry``."""

    name: str
    rule: str  # the wire-format section or lifecycle rule it pins down
    attack: str  # what a bus that got it wrong would let through (or wrongly refuse)
    registry: str  # a name in the suite's ``registries``
    received_at: str  # every step's arrival time (the broker's append time)
    steps: tuple[Step, ...]

    @property
    def reasons(self) -> set[str]:
        return {s.expect.reason for s in self.steps if s.expect.reason is not None}

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": self.rule,
            "attack": self.attack,
            "registry": self.registry,
            "received_at": self.received_at,
            "steps": [s.as_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        steps = tuple(Step.from_json(s) for s in data["steps"])
        return cls(data["name"], data["rule"], data["attack"], data["registry"], data["received_at"], steps)


@dataclass
class Suite:
    """The whole suite: named registries and cases (the file also holds the lifecycle tables)."""

    registries: dict[str, Registry]
    cases: list[Case]

    def case(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)


def load_suite(path: Path | None = None) -> Suite:
    """The suite file (default: the one shipped in ``schemas/vectors``)."""
    data = json.loads((path or VECTORS_DIR / SUITE_FILE).read_text(encoding="utf-8"))
    registries = {name: Registry.model_validate(r) for name, r in data["registries"].items()}
    return Suite(registries, [Case.from_json(c) for c in data["cases"]])


class ReferenceBus:
    """jointbus's own answer to a case: the router's ledger and rules, the SDK's opening."""

    def __init__(self, registry: Registry, received_at: datetime) -> None:
        self.ledger = Ledger(registry)
        self.rules = Rules()
        self.received_at = received_at
        self.offsets: dict[str, int] = {}

    def route(self, wire: bytes, outbox: str, *, log_append_time: bool = True) -> Verdict:
        """The router's verdict on ``wire`` arriving on ``outbox``; history is kept."""
        topic = f"jointbus.outbox.{outbox}"
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        if not log_append_time:
            return Verdict.rejected(Reason.UNTRUSTED_TIME, "the producer chose the record's time")
        outcome = self.ledger.decide(
            wire, topic, 0, offset, self.received_at, self.ledger.registry, self.rules
        )
        self.ledger.commit(outcome)
        decision = outcome.decision
        return (
            Verdict("accepted")
            if decision.accepted
            else Verdict.rejected(str(decision.reason), decision.detail)
        )

    def receive(self, wire: bytes, agency: str, kid: str, private_key: str) -> Verdict:
        """A recipient's verdict: verify under the registry in force, then open if sealed."""
        try:
            verified = verify_event(wire, self.ledger.registry, received_at=self.received_at)
            env = verified.envelope
            if agency not in env.recipients:
                return Verdict.rejected(
                    Reason.NOT_A_RECIPIENT, f"{env.id} is addressed to {', '.join(env.recipients)}"
                )
            if not env.sealed:
                return Verdict("accepted", payload=env.data)
            opener = {kid: X25519PrivateKey.from_private_bytes(b64d(private_key, what="private_key"))}
            opened = open_payload(env, agency, opener)  # the SDK's own decoding path
        except ContractError as exc:
            return Verdict.rejected(exc.reason, exc.message)
        return Verdict("accepted", payload=opened.raw)

    def step(self, step: Step) -> Verdict:
        if step.action == "route":
            return self.route(step.wire, str(step.outbox), log_append_time=step.log_append_time)
        return self.receive(step.wire, str(step.agency), str(step.kid), str(step.private_key))


def reference_verdicts(case: Case, registry: Registry) -> list[Verdict]:
    """jointbus's verdict on every step of ``case``, in order."""
    bus = ReferenceBus(registry, parse_time(case.received_at))
    return [bus.step(step) for step in case.steps]


# --- the line protocol between the runner and a verifier under test ---------------------


def input_lines(suite: Suite) -> Iterator[dict[str, Any]]:
    """What the runner sends a verifier: one JSON object per step. A case's first step
    carries its registry and arrival time: a verifier starts a fresh bus there."""
    for case in suite.cases:
        for index, step in enumerate(case.steps):
            line: dict[str, Any] = {"case": case.name, "step": index}
            if index == 0:
                line["registry"] = suite.registries[case.registry].model_dump(mode="json")
                line["received_at"] = case.received_at
            step_json = step.as_json()
            del step_json["expect"]
            step_json.pop("note", None)
            yield line | step_json


def serve(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """jointbus as the verifier under test: a verdict line for every input line."""
    bus: ReferenceBus | None = None
    for text in lines:
        if not text.strip():
            continue
        line = json.loads(text)
        if line["step"] == 0:
            bus = ReferenceBus(Registry.model_validate(line["registry"]), parse_time(line["received_at"]))
        if bus is None:
            raise ValueError(f"case {line['case']!r} does not start at step 0")
        step = Step.from_json(line | {"expect": {"verdict": "accepted"}})
        yield {"case": line["case"], "step": line["step"]} | bus.step(step).as_json()


@dataclass(frozen=True)
class Mismatch:
    """A step where the verifier under test disagrees with the suite (or said nothing)."""

    case: str
    step: int
    expected: Verdict
    got: Verdict | None
    attack: str


def compare(suite: Suite, verdicts: Iterable[dict[str, Any]]) -> tuple[int, list[Mismatch]]:
    """How many steps agree, and every step that does not (missing answers included)."""
    got = {(v.get("case"), v.get("step")): v for v in verdicts}
    agreed, mismatches = 0, []
    for case in suite.cases:
        for index, step in enumerate(case.steps):
            answer = got.get((case.name, index))
            try:
                verdict = Verdict.from_json(answer) if answer is not None else None
            except ValueError:
                verdict = None
            if verdict is not None and verdict.agrees_with(step.expect):
                agreed += 1
            else:
                mismatches.append(Mismatch(case.name, index, step.expect, verdict, case.attack))
    return agreed, mismatches
