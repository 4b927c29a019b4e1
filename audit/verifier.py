"""Full verification of the audit log, streaming, naming the first bad index and why.

Layer by layer, every record: (1) it sits at the next offset (nothing deleted, inserted or
swapped), (2) it is an audit record whose key is its position, (3) the router's decision
is re-derived from the event, the registry and the history before it — signature, keys,
rights, lifecycle — and must match, and its rejection notice must verify; then (4) each
signed checkpoint must equal the recomputed tree at its size, no two checkpoints of one
size may differ (a fork), and none may be larger than the log (a truncation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from audit.errors import AuditError, VerificationError
from audit.leaves import LeafRule
from audit.merkle import Frontier, leaf_hash
from audit.notes import Checkpoint, open_checkpoint
from audit.state import StateStore
from schemas.decide import decide_record
from schemas.envelope import MAX_ENVELOPE_BYTES, ParsedEnvelope, envelope_of, loads_with_flag, to_wire
from schemas.errors import ContractError, Reason
from schemas.ids import parse_time
from schemas.lifecycle import Rules
from schemas.projections import Projection, apply
from schemas.records import AuditRecord
from schemas.registry import AUDIT, ROUTER, Registry
from schemas.verify import verify_event


@dataclass
class Report:
    """What a successful verification covered."""

    records: int = 0
    leaves: int = 0
    repeats: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "rejected": 0, "emitted": 0})
    checkpoints: int = 0
    root: bytes = b""


def check_checkpoints(notes: list[str], registry: Registry) -> list[Checkpoint]:
    """Verify every checkpoint's signature; a forged one or a fork fails here."""
    audit_kid = registry.current_key(AUDIT, "sign", registry.issued_at).kid
    public = registry.verifier(audit_kid)
    checkpoints: dict[int, Checkpoint] = {}
    for n, note in enumerate(notes):
        try:
            cp = open_checkpoint(note, public)
        except AuditError as exc:
            raise VerificationError(
                f"checkpoint #{n} is not signed by the audit key: {exc.message}",
                index=None,
                why="forged_checkpoint",
            ) from None
        seen = checkpoints.get(cp.size)
        if seen is not None and seen.root != cp.root:
            raise VerificationError(
                f"fork: two signed checkpoints of size {cp.size} with different roots",
                index=cp.size - 1,
                why="fork",
            )
        checkpoints[cp.size] = cp
    return [checkpoints[size] for size in sorted(checkpoints)]


class Verifier:
    """Feed it the audit topic's records in order; ``finish`` returns the report."""

    def __init__(
        self, registry: Registry, checkpoint_notes: list[str], *, replay: Projection | None = None
    ) -> None:
        self.registry = registry
        self.rules = Rules()
        self.rule = LeafRule()
        self.frontier = Frontier()
        self.states = StateStore()
        self.report = Report()
        self.pending = check_checkpoints(checkpoint_notes, registry)
        self.replay = replay
        self._next_offset = 0

    def fail(self, why: str, message: str) -> VerificationError:
        index = self.frontier.size
        return VerificationError(f"leaf {index}: {message}", index=index, why=why)

    def feed(self, offset: int, key: bytes | None, value: bytes) -> None:
        """Check one record of the audit topic (raises VerificationError)."""
        if offset != self._next_offset:
            what = "missing_record" if offset > self._next_offset else "reordered_record"
            raise self.fail(what, f"expected offset {self._next_offset}, found {offset}")
        self._next_offset = offset + 1
        self.report.records += 1
        if not self.rule.admit(key):
            self.report.repeats += 1
            return
        try:
            obj, plain = loads_with_flag(value)
            record = AuditRecord.model_validate(obj)
        except (ValidationError, ValueError, ContractError):
            raise self.fail("not_a_record", "not a well-formed audit record") from None
        if key is None or key.decode(errors="replace") != record.position:
            raise self.fail("position_mismatch", f"key does not match position {record.position}")
        self._check_decision(record, plain and len(value) <= MAX_ENVELOPE_BYTES)
        self.report.decisions[record.decision] += 1
        if self.replay is not None:
            apply(self.replay, record)
        self.frontier.append(leaf_hash(value))
        self._check_reached_checkpoint()

    def _check_decision(self, record: AuditRecord, reuse_parse: bool) -> None:
        received = parse_time(record.received_at)
        if record.decision == "emitted":
            self._check_router_event(record.wire(), received, "deadline.overdue", "overdue alert")
            return
        if record.wire_sha256 is not None:
            if record.reason != Reason.TOO_LARGE or (record.wire_size or 0) <= MAX_ENVELOPE_BYTES:
                raise self.fail("decision_mismatch", "only oversized events are kept as a digest")
            return
        topic = record.position.rsplit(":", 2)[0]
        source: bytes | ParsedEnvelope
        if reuse_parse and record.event is not None:  # parsed once already: skip re-serializing
            try:
                source = envelope_of(record.event, plain=True)
            except ContractError:
                source = to_wire(record.event)
        else:
            wire = record.wire()
            assert wire is not None
            source = wire
        outcome = decide_record(
            source, topic, record.position, received, self.registry, self.rules, self.states.get
        )
        d = outcome.decision
        got = (
            "accepted" if d.accepted else "rejected",
            d.reason,
            d.detail[:1000],
            sorted(d.deliver_to) if d.accepted else [],
        )
        want = (record.decision, record.reason, record.detail, sorted(record.delivered_to))
        if got != want:
            raise self.fail("decision_mismatch", f"logged {want[:2]} but the rules give {got[:2]}")
        if outcome.verified is not None and outcome.state is not None:
            self.states.put(outcome.verified.envelope.subject, outcome.state)
        if record.notice is not None:
            self._check_router_event(to_wire(record.notice), received, "rejection", "rejection notice")

    def _check_router_event(self, wire: bytes | None, received: Any, family: str, what: str) -> None:
        try:
            if wire is None:
                raise ContractError("missing", reason="schema")
            verified = verify_event(wire, self.registry, received_at=received, check_skew=False)
        except ContractError as exc:
            raise self.fail("bad_router_event", f"{what} does not verify: {exc.reason}") from None
        if verified.sender.id != ROUTER or verified.spec.family != family:
            raise self.fail("bad_router_event", f"{what} is not a {family} by the router")

    def _check_reached_checkpoint(self) -> None:
        while self.pending and self.pending[0].size == self.frontier.size:
            cp = self.pending.pop(0)
            if self.frontier.root() != cp.root:
                start = self._last_good
                raise VerificationError(
                    f"the first {cp.size} leaves do not hash to the signed checkpoint "
                    f"(first divergence within leaves {start}..{cp.size - 1})",
                    index=start,
                    why="checkpoint_mismatch",
                )
            self.report.checkpoints += 1
            self._last_good = cp.size

    _last_good = 0

    def finish(self) -> Report:
        """End of the log: no checkpoint may be left unreached (a truncated log)."""
        self.states.close()
        if self.pending:
            cp = self.pending[0]
            raise VerificationError(
                f"truncated log: a checkpoint signs {cp.size} leaves but the log has {self.frontier.size}",
                index=self.frontier.size,
                why="truncated",
            )
        self.report.leaves = self.frontier.size
        self.report.root = self.frontier.root()
        return self.report
