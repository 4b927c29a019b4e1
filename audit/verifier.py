"""Full verification of the audit log, streaming, naming the first bad index and why.

Layer by layer, every record: (1) it sits at the next offset (nothing deleted, inserted or
swapped), (2) it is an audit record whose key is its position, (3) the router's decision
is re-derived from the event, the registry and the history before it — signature, keys,
rights, lifecycle, event ids — and must match, and its rejection notice must verify,
(4) it names as predecessor the last decision of its outbox partition (a hole there is a
``missing_decision``, two chains a ``double_decision``), and a repeated position must
repeat the same decision; then (5) each signed checkpoint must equal the recomputed tree at
its size, no two checkpoints of one size may differ (a fork), and none may be larger than
the log (a truncation). ``audit.completeness`` then checks that every outbox record has a
decision.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jointbus.audit.completeness import OutboxRow
from jointbus.audit.errors import AuditError, AuditFailure, VerificationError
from jointbus.audit.merkle import Frontier, leaf_hash
from jointbus.audit.notes import Checkpoint, open_checkpoint
from jointbus.audit.state import StateStore
from jointbus.audit.witnessing import Witnessed, cosignature_lines, witnessed
from jointbus.schemas.envelope import MAX_ENVELOPE_BYTES, to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.log import audit_checkpoint
from jointbus.schemas.ids import format_time, parse_time
from jointbus.schemas.leaves import LeafRule, OffsetRuns
from jointbus.schemas.ledger import Ledger
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.projections import Projection, apply
from jointbus.schemas.records import AuditRecord, parse_position, parse_record
from jointbus.schemas.registry import AUDIT, ROUTER, Registry
from jointbus.schemas.registry_chain import RegistryVersion
from jointbus.schemas.signing import prechecked
from jointbus.schemas.verify import verify_event

#: how many recent leaves' verdicts a repeated record is compared with
RECENT_VERDICTS = 200_000


@dataclass
class Report:
    """What a successful verification covered."""

    records: int = 0
    leaves: int = 0
    repeats: int = 0
    decisions: dict[str, int] = field(
        default_factory=lambda: {"accepted": 0, "rejected": 0, "emitted": 0, "quarantined": 0}
    )
    checkpoints: int = 0
    root: bytes = b""
    #: the registry version in force at the end of the log, and the registry-topic records
    #: checked against the versions the log brought into force (online only)
    registry_version: int = 0
    registry_records: int = 0
    #: how many agencies' witnesses cosigned the latest checkpoint (None: no checkpoint)
    witnessed: Witnessed | None = None


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
                why=AuditFailure.FORGED_CHECKPOINT,
            ) from None
        seen = checkpoints.get(cp.size)
        if seen is not None and seen.root != cp.root:
            raise VerificationError(
                f"fork: two signed checkpoints of size {cp.size} with different roots",
                index=cp.size - 1,
                why=AuditFailure.FORK,
            )
        checkpoints[cp.size] = cp
    return [checkpoints[size] for size in sorted(checkpoints)]


class Verifier:
    """Feed it the audit topic's records in order; ``finish`` returns the report."""

    def __init__(
        self,
        registry: Registry,
        checkpoint_notes: list[str],
        *,
        replay: Projection | None = None,
        outboxes: Mapping[str, list[OutboxRow]] | None = None,
        cosigned_notes: list[str] | None = None,
    ) -> None:
        """``outboxes`` (online): the outbox records themselves, so each decision is also
        checked to be about the bytes the agency sent, at the time the broker stamped.
        ``cosigned_notes``: the witnesses' cosigned checkpoints; a root they cosigned that
        differs from the log's for the same size is a fork (a split view), and the latest
        checkpoint's cosignatures are counted against the policy."""
        self.outbox: dict[str, OutboxRow] | None = None
        if outboxes is not None:
            self.outbox = {f"{stream}:{row.offset}": row for stream, rows in outboxes.items() for row in rows}
        self.rules = Rules()
        self.rule = LeafRule()
        self.frontier = Frontier()
        self.states = StateStore()
        self.ledger = Ledger(registry, self.states)
        #: every outbox offset decided, by partition (for the completeness check)
        self.decided: dict[str, OffsetRuns] = {}
        #: the verdicts of the most recent leaves, which a repeat must match (the router
        #: writes a decision again only from its recent memory, far smaller than this)
        self._verdicts: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self.report = Report()
        # a cosigned note counts only if the audit key signed its checkpoint: anyone with a
        # witness's Kafka access could write junk there
        self.cosigned = [n for n in cosigned_notes or [] if audit_checkpoint(n, registry) is not None]
        self.pending = check_checkpoints(checkpoint_notes + self.cosigned, registry)
        self.latest = self.pending[-1] if self.pending else None
        self.replay = replay
        self._next_offset = 0
        self._numbered = False  # a record with its leaf index was seen

    @property
    def registry(self) -> Registry:
        """The registry version in force at the record being checked (re-derived from the
        one the log started with, through every governance change in the log)."""
        return self.ledger.registry

    def fail(self, why: AuditFailure, message: str) -> VerificationError:
        index = self.frontier.size
        return VerificationError(f"leaf {index}: {message}", index=index, why=why)

    def feed(
        self, offset: int, key: bytes | None, value: bytes, *, known: Mapping[str, bool] | None = None
    ) -> None:
        """Check one record of the audit topic (raises VerificationError); ``known``: its
        signatures already checked elsewhere (``audit.parallel``)."""
        if offset < self._next_offset:
            raise self.fail(
                AuditFailure.REORDERED_RECORD, f"offset {offset} after offset {self._next_offset - 1}"
            )
        expected, self._next_offset = self._next_offset, offset + 1
        self.report.records += 1
        try:
            record, plain = parse_record(value)
        except ContractError:
            raise self.fail(AuditFailure.NOT_A_RECORD, "not a well-formed audit record") from None
        # Once records carry their leaf index, an offset gap is no failure (a transaction's
        # commit marker takes an offset; what a fenced router wrote is aborted) and a
        # deleted or moved leaf is named by ``leaf``. Before that, the router wrote without
        # transactions and every offset holds a record.
        self._numbered = self._numbered or record.leaf is not None
        if offset > expected and not self._numbered:
            raise self.fail(AuditFailure.MISSING_RECORD, f"expected offset {expected}, found {offset}")
        if key is None or key.decode(errors="replace") != record.position:
            raise self.fail(AuditFailure.POSITION_MISMATCH, f"key does not match position {record.position}")
        verdict = (record.decision, record.reason)
        if not self.rule.admit(key):
            self.report.repeats += 1
            if self._verdicts.get(record.position, verdict) != verdict:
                raise self.fail(
                    AuditFailure.DOUBLE_DECISION,
                    f"{record.position} decided twice: {self._verdicts[record.position]} then {verdict}",
                )
            return
        if record.leaf is None and self._numbered:
            raise self.fail(AuditFailure.NOT_A_RECORD, "a leaf without its index after numbered leaves")
        if record.leaf is not None and record.leaf != self.frontier.size:
            what = (
                AuditFailure.MISSING_RECORD
                if record.leaf > self.frontier.size
                else AuditFailure.REORDERED_RECORD
            )
            raise self.fail(what, f"the record says it is leaf {record.leaf}")
        self._verdicts[record.position] = verdict
        if len(self._verdicts) > RECENT_VERDICTS:
            self._verdicts.popitem(last=False)
        with prechecked(known):
            self._check_decision(record, plain and len(value) <= MAX_ENVELOPE_BYTES)
        self.report.decisions[record.decision] += 1
        if self.replay is not None:
            apply(self.replay, record)
        self.frontier.append(leaf_hash(value))
        self._check_reached_checkpoint()

    def _check_decision(self, record: AuditRecord, plain: bool) -> None:
        received = parse_time(record.received_at)
        if record.decision == "emitted":
            self._check_router_event(record.wire(), received, "deadline.overdue", "overdue alert")
            return
        if record.decision == "quarantined":
            if not record.position.startswith("quarantine:"):
                raise self.fail(AuditFailure.DECISION_MISMATCH, "a quarantine record names no aggregate")
            return
        oversized = record.reason == Reason.TOO_LARGE and (record.wire_size or 0) > MAX_ENVELOPE_BYTES
        if record.wire_sha256 is not None and not (oversized or record.reason == Reason.INTERNAL):
            raise self.fail(AuditFailure.DECISION_MISMATCH, "only oversized events are kept as a digest")
        where = parse_position(record.position)
        if where is None:
            raise self.fail(AuditFailure.NOT_A_RECORD, f"{record.position[:80]!r} is not an outbox position")
        try:
            outcome = self.ledger.rederive(record, self.registry, self.rules, plain=plain)
        except ContractError as exc:
            raise self.fail(AuditFailure.NOT_A_RECORD, exc.message) from None
        d = outcome.decision
        got = (
            "accepted" if d.accepted else "rejected",
            d.reason,
            d.detail[:1000],
            sorted(d.deliver_to) if d.accepted else [],
        )
        want = (record.decision, record.reason, record.detail, sorted(record.delivered_to))
        if got != want:
            raise self.fail(AuditFailure.DECISION_MISMATCH, f"logged {want[:2]} but the rules give {got[:2]}")
        if record.registry_version is not None and record.registry_version != outcome.registry_version:
            raise self.fail(
                AuditFailure.DECISION_MISMATCH,
                f"decided under registry v{record.registry_version}, "
                f"but v{outcome.registry_version} was in force",
            )
        if record.sender != where.owner:
            raise self.fail(AuditFailure.DECISION_MISMATCH, "the sender of record is not the outbox's owner")
        self._check_chain(record, outcome.prev)
        self._check_input(record)
        self.ledger.commit(outcome)
        self.decided.setdefault(outcome.stream, OffsetRuns()).add(outcome.offset)
        if record.notice is not None:
            family = "acceptance" if record.decision == "accepted" else "rejection"
            self._check_router_event(to_wire(record.notice), received, family, f"{family} notice")

    def _check_input(self, record: AuditRecord) -> None:
        """A decision is about what the outbox holds at its position: the same input, the
        broker's time; ``untrusted_time`` only where the producer set the time."""
        row = None if self.outbox is None else self.outbox.get(record.position)
        if row is None:  # offline, or the outbox record is past its retention
            return
        stamped = format_time(datetime.fromtimestamp(row.timestamp_ms / 1000, tz=UTC))
        if record.received_at != stamped:
            raise self.fail(
                AuditFailure.DECISION_MISMATCH,
                f"{record.position} was logged as received at {record.received_at}, appended at {stamped}",
            )
        if record.input_digest() not in row.digests:
            raise self.fail(
                AuditFailure.DECISION_MISMATCH,
                f"the input logged for {record.position} is not the outbox record",
            )
        if record.reason == Reason.UNTRUSTED_TIME and row.appended:
            raise self.fail(
                AuditFailure.DECISION_MISMATCH,
                f"{record.position} has the broker's time, not an untrusted one",
            )

    def _check_chain(self, record: AuditRecord, head: int | None) -> None:
        """A decision names the last one of its partition: a hole or a second chain fails,
        and so does a decision of an offset at or below one already decided (out of order)."""
        where = parse_position(record.position)
        assert where is not None  # checked by the caller
        if head is not None and where.offset <= head:
            raise self.fail(
                AuditFailure.DOUBLE_DECISION,
                f"{record.position} is decided after offset {head} of its partition: out of order",
            )
        if record.prev == head:
            return
        where = parse_position(record.position)
        assert where is not None  # checked by the caller
        stream = where.stream
        if record.prev is not None and (head is None or record.prev > head):
            raise self.fail(
                AuditFailure.MISSING_DECISION,
                f"the decision of {stream}:{record.prev} is missing "
                f"({record.position} follows it; the log's last decision there is {head})",
            )
        raise self.fail(
            AuditFailure.DOUBLE_DECISION,
            f"{record.position} follows {stream}:{record.prev}, but {head} was decided since",
        )

    def _check_router_event(self, wire: bytes | None, received: Any, family: str, what: str) -> None:
        try:
            if wire is None:
                raise ContractError("missing", reason="schema")
            verified = verify_event(wire, self.registry, received_at=received, check_skew=False)
        except ContractError as exc:
            raise self.fail(AuditFailure.BAD_ROUTER_EVENT, f"{what} does not verify: {exc.reason}") from None
        if verified.sender.id != ROUTER or verified.spec.family != family:
            raise self.fail(AuditFailure.BAD_ROUTER_EVENT, f"{what} is not a {family} by the router")

    def _check_reached_checkpoint(self) -> None:
        while self.pending and self.pending[0].size == self.frontier.size:
            cp = self.pending.pop(0)
            if self.frontier.root() != cp.root:
                start = self._last_good
                raise VerificationError(
                    f"the first {cp.size} leaves do not hash to the signed checkpoint "
                    f"(first divergence within leaves {start}..{cp.size - 1})",
                    index=start,
                    why=AuditFailure.CHECKPOINT_MISMATCH,
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
                why=AuditFailure.TRUNCATED,
            )
        self.report.leaves = self.frontier.size
        self.report.registry_version = self.registry.version
        self.report.root = self.frontier.root()
        if self.latest is not None:
            lines = cosignature_lines(self.latest, self.cosigned)
            self.report.witnessed = witnessed(self.latest, lines, self.registry)
        return self.report


def check_registry_feed(derived: Mapping[int, str], offered: list[bytes]) -> int:
    """Every record on ``jointbus.registry`` is a version the log itself brought into force,
    with the same digest: the operator cannot show agencies' Subscribers a registry the log
    never had (a fork). Returns how many records were checked."""
    for value in offered:
        try:
            version = RegistryVersion.model_validate_json(value).registry
        except ValidationError:
            raise VerificationError(
                "an unreadable record on the registry topic", index=None, why=AuditFailure.REGISTRY_FORK
            ) from None
        if derived.get(version.version) != version.digest:
            raise VerificationError(
                f"registry v{version.version} on the registry topic is not the log's",
                index=None,
                why=AuditFailure.REGISTRY_FORK,
            )
    return len(offered)
