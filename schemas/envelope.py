"""The envelope: CloudEvents 1.0 structured-mode JSON plus jointbus extensions.

``recipients``, ``correlationid``, ``causationid``, ``sigkeyid`` and ``signature`` are
CloudEvents extension attributes. The wire value is the envelope's JSON object; parsing is
strict: a size limit, no duplicate keys, no NaN, no unknown attributes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from jointbus.schemas.canonical import MAX_SAFE_INT, astral_bytes
from jointbus.schemas.errors import Reason, rejection
from jointbus.schemas.ids import UUID_PATTERN, WireTime
from jointbus.schemas.wiremodel import WireModel, refuse_top_nulls

#: the largest envelope the bus accepts, in bytes of its wire form
MAX_ENVELOPE_BYTES = 256 * 1024
#: the deepest nesting of objects and arrays an envelope may have (real ones reach 5)
MAX_DEPTH = 16
PLAIN_CONTENT_TYPE = "application/json"
SEALED_CONTENT_TYPE = "application/jointbus-sealed+json"
#: the Kafka ``content-type`` header of structured-mode CloudEvents
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
SOURCE_PREFIX = "urn:jointbus:"

AgencyRef = Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$")]


class Envelope(WireModel):
    """A signed jointbus event as it travels on Kafka and sits in the audit log."""

    _no_nulls = model_validator(mode="before")(refuse_top_nulls)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    specversion: Literal["1.0"]
    id: Annotated[str, Field(pattern=UUID_PATTERN)]
    source: Annotated[str, Field(pattern=r"^urn:jointbus:([a-z]{2}-[a-z]{2,20}|svc-[a-z]{2,20})$")]
    type: Annotated[str, Field(pattern=r"^org\.jointbus\.[a-z_]+(\.[a-z_]+)*\.v[1-9][0-9]{0,2}$")]
    subject: Annotated[str, Field(pattern=r"^[a-z]+/[A-Za-z0-9._-]{1,80}$")]
    time: WireTime
    datacontenttype: Literal["application/json", "application/jointbus-sealed+json"]
    recipients: Annotated[list[AgencyRef], Field(min_length=1, max_length=16)]
    correlationid: Annotated[str, Field(pattern=UUID_PATTERN)]
    causationid: Annotated[str, Field(pattern=UUID_PATTERN)] | None = None
    sigkeyid: Annotated[str, Field(pattern=r"^[a-z0-9-]{2,30}#sig-[0-9]{1,6}$")]
    signature: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]
    data: dict[str, Any]

    @property
    def sender(self) -> str:
        """The member id that claims to have sent this event."""
        return self.source.removeprefix(SOURCE_PREFIX)

    @property
    def sealed(self) -> bool:
        return self.datacontenttype == SEALED_CONTENT_TYPE


def source_of(member_id: str) -> str:
    """The CloudEvents ``source`` of a member."""
    return SOURCE_PREFIX + member_id


def to_wire(envelope: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of an envelope dict (any key order; signatures use RFC 8785)."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup[:40]!r}")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(raw: bytes) -> Any:
    """Parse JSON refusing what parsers disagree on: duplicate keys, NaN/Infinity, bad UTF-8."""
    return loads_with_flag(raw)[0]


def _no_floats(text: str) -> Any:
    raise ValueError(f"number {text[:20]} is not an integer: the contract carries integers only")


def _safe_int(text: str) -> int:
    if len(text) > 17:  # beyond ±2^53 whatever its digits: never convert a long one
        raise ValueError(f"integer {text[:20]}... is outside ±2^53")
    if text == "-0":  # canonicalizes to 0: a second wire form of one value
        raise ValueError("-0 is not an integer form of the contract: write 0")
    value = int(text)
    if not -MAX_SAFE_INT < value < MAX_SAFE_INT:
        raise ValueError(f"integer {text[:20]} is outside ±2^53")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_no_constants,
    parse_float=_no_floats,
    parse_int=_safe_int,
)
#: the most structure an envelope may have: bytes ``[``, ``]``, ``{``, ``}`` and ``,``
#: anywhere, strings included (each value beyond a container's first takes a comma, so
#: this bounds every value, key and container a reader walks). Honest events stay under
#: 1,500 (a findings report of 200 findings is the largest the catalog allows).
MAX_STRUCTURE = 2048


#: every byte but the structural ones: deleting them leaves a record's skeleton, in order
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b"[]{},")


def structure_size(raw: bytes) -> int:
    """How many bytes of ``raw`` are ``[``, ``]``, ``{``, ``}`` or ``,`` (wire-format §2)."""
    return len(raw.translate(None, _NOT_STRUCTURAL))


#: a JSON string (or the rest of the text from an unterminated one); possessive, so each
#: match costs what it spans
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
#: reads JSON syntax only: numbers and constants stay text (nothing converted, nothing
#: refused but syntax), so its only errors are where the text stops being JSON
_SYNTAX = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)


def nesting_depth(raw: bytes, limit: int) -> int:
    """How deep objects and arrays nest in JSON text, brackets inside strings not counted,
    measured on the text as far as it is JSON (up to its first syntax error); counting
    stops once past ``limit``.

    Checked before any recursive work: a parser, canonicalizer or validator given 1,000
    nested arrays would exhaust the stack. Bounded: it runs only when the bytes open more
    than ``limit`` levels, and the part of a text that is JSON holds at most about twice
    as many strings as ``check_bounds`` lets it have commas and brackets.
    """
    bones = raw.translate(None, _NOT_STRUCTURAL)
    if bones.count(b"[") + bones.count(b"{") <= limit:  # cannot nest deeper than it opens
        return 0
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw[: exc.start].decode("utf-8")
    try:
        _SYNTAX.decode(text)
    except json.JSONDecodeError as exc:
        text = text[: exc.pos]
    except RecursionError:  # a thousand levels before any syntax error
        return limit + 1
    return _depth(_STRING.sub("", text).encode("utf-8").translate(None, _NOT_STRUCTURAL), limit)


def _depth(bones: bytes, limit: int) -> int:
    """How deep the brackets of a skeleton (``[]{},`` only) nest, up to ``limit`` + 1."""
    depth = deepest = 0
    for char in bones:
        if char in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char != 0x2C:
            depth -= 1
    return deepest


def check_bounds(raw: bytes, max_depth: int = MAX_DEPTH, max_structure: int = MAX_STRUCTURE) -> None:
    """The bounds of wire-format §2, before the strict parse: at most ``max_structure``
    bytes that are brackets or commas, wherever they stand (``too_large``; a count with no
    JSON knowledge), then JSON nesting at most ``max_depth`` levels (``too_deep``). After
    them, every later step costs at most a constant per byte plus a constant per
    structural byte."""
    size = structure_size(raw)
    if size > max_structure:
        raise rejection(
            Reason.TOO_LARGE, f"{size} of the bytes are brackets or commas; the limit is {max_structure}"
        )
    if nesting_depth(raw, max_depth) > max_depth:
        raise rejection(Reason.TOO_DEEP, f"JSON nests deeper than {max_depth} levels")


def loads_with_flag(
    raw: bytes, max_depth: int = MAX_DEPTH, max_structure: int = MAX_STRUCTURE
) -> tuple[Any, bool]:
    """Strict parse; also says whether ``canonical``'s fast path applies (no astral chars).

    The contract's numbers are integers within ±2^53 (I-JSON), so floats and huge integers
    are refused here: no implementation has to agree on float formatting. The bounds of
    ``check_bounds`` are checked first (``too_large``, ``too_deep``).
    """
    check_bounds(raw, max_depth, max_structure)
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise rejection(Reason.SCHEMA, f"not strict JSON: {str(exc)[:200]}") from None
    escaped_surrogate = b"\\u" in raw and (b"\\ud" in raw or b"\\uD" in raw)
    if escaped_surrogate and not _unicode_only(value):
        raise rejection(Reason.SCHEMA, "not strict JSON: a string holds a lone surrogate (no UTF-8 form)")
    return value, not escaped_surrogate and not astral_bytes(raw)


def _unicode_only(value: Any) -> bool:
    """Every string in ``value`` (keys too) has a UTF-8 form: an escaped lone surrogate
    (``"\\ud800"``) parses, yet has no canonical bytes to sign."""
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(_unicode_only(k) and _unicode_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_unicode_only(v) for v in value)
    return True


@dataclass(frozen=True)
class ParsedEnvelope:
    """Wire bytes parsed: the raw object (what was signed), the model, canonical-fast flag."""

    raw: dict[str, Any]
    envelope: Envelope
    plain: bool


def parse_envelope(wire: bytes) -> ParsedEnvelope:
    """Size-check, parse and validate wire bytes.

    The raw object is what the signature is checked over, so no normalisation by the model
    can change what was signed.
    """
    return envelope_of(*parse_wire(wire))


def parse_wire(wire: bytes) -> tuple[Any, bool]:
    """The bounds and strict parse of wire-format §3.1 checks 1–3: the JSON value of an
    envelope's bytes (any value; ``envelope_of`` checks it is an envelope) and its flag."""
    if len(wire) > MAX_ENVELOPE_BYTES:
        raise rejection(Reason.TOO_LARGE, f"envelope is {len(wire)} bytes; the limit is {MAX_ENVELOPE_BYTES}")
    return loads_with_flag(wire)


def envelope_of(obj: Any, plain: bool = False) -> ParsedEnvelope:
    """Validate an already-parsed JSON value as an envelope (``plain``: see canonical)."""
    if not isinstance(obj, dict):
        raise rejection(Reason.SCHEMA, "an envelope is a JSON object")
    try:
        return ParsedEnvelope(obj, Envelope.model_validate(obj), plain)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise rejection(Reason.SCHEMA, f"envelope {where}: {err['msg']}"[:300]) from None
