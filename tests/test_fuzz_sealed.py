"""Fuzzing the recipient's reading of sealed payloads: any plaintext, sealed to cq-yongchuan
and correctly signed, is decided by the Subscriber's pure judge (accepted, or refused with a
reason code other than ``internal_error``), and the same as by the reference bus."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jointbus.schemas.catalog import CURRENT
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import Reason
from jointbus.streams.judge import Accepted, Duplicate, InboxJudge, Refused
from tests.fuzzing import examples, fuzz_target, keep
from tests.test_sealed_plaintext import CLUE, RECIPIENT, REGISTRY, RINGS, judged, referenced, sealed_clue

REASONS = {r.value for r in Reason} - {Reason.INTERNAL.value}


def honest_plaintexts() -> list[bytes]:
    """The seeds: honest sealed payloads' plaintexts, as a sender writes them."""
    sensitive = [spec for spec in CURRENT.values() if spec.sensitive]
    return [
        json.dumps(dict(s.example), ensure_ascii=False, separators=(",", ":")).encode() for s in sensitive
    ]


@fuzz_target("sealed-plaintext", seeds=honest_plaintexts)
def decide_sealed_plaintext(plaintext: bytes) -> None:
    """``plaintext`` sealed in a signed clue to cq-yongchuan, then judged: a decision with a
    rule's reason code, never an exception, and the reference bus says the same."""
    wire = to_wire(sealed_clue(plaintext))
    verdict, reason = judged(wire)
    assert verdict == "accepted" or reason in REASONS, (verdict, reason)
    assert referenced(wire) == (verdict, reason)


def _decide(plaintext: bytes) -> tuple[str, str | None]:
    try:
        decide_sealed_plaintext(plaintext)
    except BaseException:
        keep("sealed-plaintext", plaintext)
        raise
    return judged(to_wire(sealed_clue(plaintext)))


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


@examples(200)
@given(value=json_values)
def test_any_json_value_sealed_is_decided(value: Any) -> None:
    """A JSON value of any shape (floats, NaN, huge integers, nulls, lone surrogates) as the
    whole plaintext: decided, never raised."""
    try:
        plaintext = _text(value).encode("utf-8", "surrogatepass")
    except ValueError:
        plaintext = _text(value).encode("utf-8", "replace")
    _decide(plaintext)


@examples(200)
@given(
    field=st.sampled_from(sorted(CLUE)) | st.text(max_size=12),
    value=json_values,
    duplicate=st.booleans(),
    cut=st.integers(min_value=0, max_value=4000),
)
def test_a_clue_with_one_field_changed_is_decided(field: str, value: Any, duplicate: bool, cut: int) -> None:
    """The honest clue with one field replaced (or added, or repeated as a duplicate key),
    sometimes cut short: decided, and accepted only when it is still a valid clue."""
    text = json.dumps(CLUE, ensure_ascii=False, separators=(",", ":"))
    extra = f"{json.dumps(field, ensure_ascii=False)}:{_text(value)}"
    text = text[:-1] + "," + extra + "}" if duplicate or field not in CLUE else _text({**CLUE, field: value})
    raw = text.encode("utf-8", "surrogatepass")
    if cut < len(raw) and cut % 3 == 0:
        raw = raw[:cut]
    verdict, _ = _decide(raw)
    if verdict == "accepted":
        assert field in CLUE, (field, value)
        assert not duplicate, (field, value)


def test_the_judge_answers_every_delivery_with_a_value() -> None:
    """An honest clue is Accepted; the same id again a Duplicate; a hostile one Refused with
    a receipt to answer (authentic, addressed to the judge's agency)."""

    judge = InboxJudge(RECIPIENT, RINGS[RECIPIENT].openers(), REGISTRY)
    honest = sealed_clue(json.dumps(CLUE).encode())
    first = judge.judge(to_wire(honest), 0)
    assert isinstance(first, Accepted)
    assert isinstance(judge.judge(to_wire(honest), 0, seen={honest["id"]}), Duplicate)
    hostile = judge.judge(to_wire(sealed_clue(b"not json")), 0)
    assert isinstance(hostile, Refused)
    assert hostile.reason == Reason.SCHEMA
    assert hostile.answer is not None
    assert hostile.answer.spec.family == "clue.transferred"
