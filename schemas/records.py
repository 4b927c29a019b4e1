"""Audit records: what the router appends to ``jointbus.audit`` for every decision.

Shared by the router (which writes them) and the audit log (which makes them leaves), who
meet only through the topic. A record's ``position`` names the Kafka record it decided
(``topic:partition:offset``) or the deadline it raised, so the same decision written twice
after a crash is recognised as one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jointbus.schemas.canonical import canonical
from jointbus.schemas.envelope import (
    MAX_DEPTH,
    MAX_ENVELOPE_BYTES,
    MAX_STRUCTURE,
    loads_strict,
    loads_with_flag,
    to_wire,
)
from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.ids import WireTime

RECORD_VERSION = 1
#: an audit record wraps an envelope (and a notice): two levels more than an envelope
RECORD_DEPTH = MAX_DEPTH + 2
#: an audit record holds an event and a notice, each within the envelope's bounds
RECORD_STRUCTURE = 2 * MAX_STRUCTURE + 1024


class AuditRecord(BaseModel):
    """One decision of the bus, as kept forever.

    ``sender`` is the sender of record: the agency whose outbox the record came from (the
    authenticated Kafka writer), whatever the event claims; the router for its own events.
    ``prev`` is the offset of the previous decision of the same outbox partition (None for
    a partition's first), so a missing decision leaves a visible hole. ``leaf`` is the index
    the record takes in the log's Merkle tree, so a deleted or moved leaf is named at once
    (the log's Kafka offsets have gaps: each transaction's commit marker takes one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    record: Literal[1] = 1
    position: Annotated[str, Field(min_length=1, max_length=300)]
    received_at: WireTime
    decision: Literal["accepted", "rejected", "emitted", "quarantined"]
    reason: str | None = None
    detail: str = ""
    event_id: str | None = None
    sender: str | None = None
    event: dict[str, Any] | None = None
    wire_b64: str | None = None
    wire_sha256: str | None = None
    wire_size: int | None = None
    delivered_to: list[str] = []
    notice: dict[str, Any] | None = None
    prev: int | None = None
    #: the registry version the decision was made under (governance changes it live)
    registry_version: int | None = None
    #: the leaf index this record takes (None in logs written before it was kept)
    leaf: Annotated[int, Field(ge=0)] | None = None

    def to_bytes(self) -> bytes:
        """The canonical bytes of the record: what the Merkle leaf hashes."""
        return canonical(self.model_dump(exclude_none=True))

    def input_digest(self) -> str:
        """SHA-256 (hex) of the input as kept: of the canonical JSON when the record keeps
        the object, of the bytes otherwise; what ``input_digests`` of the outbox record
        must contain, so an auditor can check the router logged what the agency sent."""
        if self.wire_sha256 is not None:
            return self.wire_sha256
        if self.event is not None:
            return hashlib.sha256(canonical(self.event)).hexdigest()
        return hashlib.sha256(base64.b64decode(self.wire_b64 or "")).hexdigest()

    def wire(self) -> bytes | None:
        """The bytes of the decided event (None when only a digest of an oversized one is kept)."""
        if self.wire_b64 is not None:
            return base64.b64decode(self.wire_b64)
        return None if self.event is None else to_wire(self.event)


def parse_record(value: bytes) -> tuple[AuditRecord, bool]:
    """The audit record in ``value`` and whether ``canonical``'s fast path applies to it:
    the one bounded, strict reading every reader of the log uses (its bytes hold what members
    sent); ``schema`` (or ``too_large``, ``too_deep``) when they are no record."""
    obj, plain = loads_with_flag(value, RECORD_DEPTH, RECORD_STRUCTURE)
    try:
        return AuditRecord.model_validate(obj), plain
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise rejection(Reason.SCHEMA, f"audit record {where}: {err['msg']}"[:300]) from None


def record_of(value: bytes) -> AuditRecord:
    """``parse_record`` without the flag."""
    return parse_record(value)[0]


def event_fields(wire: bytes, parsed: dict[str, Any] | None = None) -> dict[str, Any]:
    """How to keep received bytes: the JSON object, else base64, else (oversized) a digest.

    ``parsed``: the object already parsed from ``wire`` by the strict parser (bounded, and
    canonicalizable by then), which saves parsing it again.
    """
    if parsed is not None:
        return {"event": parsed}
    if len(wire) > MAX_ENVELOPE_BYTES:
        return {"wire_sha256": hashlib.sha256(wire).hexdigest(), "wire_size": len(wire)}
    try:
        obj = loads_strict(wire)  # refuses deep nesting before any recursive work
    except ContractError:
        obj = None
    if isinstance(obj, dict):
        try:
            canonical(obj)  # lone surrogates parse but have no canonical form: keep the bytes
            return {"event": obj}
        except ContractError:
            pass
    return {"wire_b64": base64.b64encode(wire).decode("ascii")}


#: every outbox topic is this prefix plus the agency id
OUTBOX_PREFIX = "jointbus.outbox."


class Position(NamedTuple):
    """Where a decided record sits: ``topic:partition:offset`` in its string form."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def stream(self) -> str:
        """The partition, as ``topic:partition``: decisions form one chain per stream."""
        return f"{self.topic}:{self.partition}"

    @property
    def owner(self) -> str | None:
        """The agency whose outbox this is (the authenticated writer), if it is an outbox."""
        return outbox_owner(self.topic)


def outbox_owner(topic: str) -> str | None:
    """The agency whose outbox ``topic`` is, else None."""
    return topic.removeprefix(OUTBOX_PREFIX) if topic.startswith(OUTBOX_PREFIX) else None


def input_digests(value: bytes | None) -> frozenset[str]:
    """The digests an audit record of this outbox value may carry (see
    ``AuditRecord.input_digest``): of the bytes, and of the canonical JSON if it has one."""
    data = value or b""
    digests = {hashlib.sha256(data).hexdigest()}
    kept = event_fields(data)
    if "event" in kept:
        digests.add(hashlib.sha256(canonical(kept["event"])).hexdigest())
    return frozenset(digests)


def position_of(topic: str, partition: int, offset: int) -> str:
    """The position string of a Kafka record."""
    return str(Position(topic, partition, offset))


@functools.lru_cache(maxsize=8192)  # one record's position is parsed by several checks
def parse_position(position: str) -> Position | None:
    """The outbox position a canonical position string names, else None (deadline alerts,
    quarantines, or a malformed string)."""
    topic, _, rest = position.partition(":")
    partition, _, offset = rest.partition(":")
    if not topic or not _canonical_int(partition) or not _canonical_int(offset):
        return None
    return Position(topic, int(partition), int(offset))


def _canonical_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")) and len(text) < 19
