"""Property tests: any change to a signed attribute breaks verification; the canonical
fast path equals the RFC 8785 reference."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointbus.schemas.canonical import canonical
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import new_federation
from jointbus.schemas.signing import signature_valid
from jointbus.schemas.verify import verify_event
from tests.samples import SAMPLES

NOW = utcnow()
REGISTRY, RINGS = new_federation(NOW - timedelta(days=1))
BASES = [
    compose(
        keyring=RINGS["sc-zigong"],
        registry=REGISTRY,
        event_type=family,
        subject=f"x/{i}",
        recipients=["cq-yongchuan", "sc-luzhou"],
        payload=SAMPLES[family],
        now=NOW,
        causationid="01950c2a-0000-7000-8000-00000000000a",
    )
    for i, family in enumerate(["jointcheck.invited", "clue.transferred", "rectification.issued"])
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a leaf or container inside a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def mutate(value: Any, draw: st.DrawFn) -> Any:
    """A different JSON value of a related shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + draw(st.integers(1, 1000))
    if isinstance(value, str):
        return draw(st.text(min_size=0, max_size=40).filter(lambda s: s != value))
    if isinstance(value, list):
        return [*value, "extra"] if draw(st.booleans()) or not value else value[:-1]
    if isinstance(value, dict):
        return {**value, "injected": "x"}
    return "not-null"


@st.composite
def tampered(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    base = draw(st.sampled_from(BASES))
    signed_paths = [p for p in paths(base) if p[0] != "signature"]
    path = draw(st.sampled_from(signed_paths))
    changed = copy.deepcopy(base)
    holder: Any = changed
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = mutate(holder[path[-1]], draw)
    return base, changed


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tampered())
def test_any_change_to_any_signed_attribute_breaks_verification(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Every attribute and every nested data field is covered by the signature."""
    base, changed = case
    key = REGISTRY.verifier(base["sigkeyid"]) if changed["sigkeyid"] == base["sigkeyid"] else None
    if key is not None:
        assert not signature_valid(changed, key)
    try:
        verify_event(to_wire(changed), REGISTRY, received_at=NOW)
    except ContractError:
        return
    raise AssertionError(f"tampered event verified: {changed}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_canonical_fast_path_equals_rfc8785_reference(value: Any) -> None:
    """Our fast canonical bytes are RFC 8785's for every integer/string JSON value."""
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:  # lone surrogates: no canonical form
        try:
            canonical(value)
        except ContractError:
            return
        raise AssertionError("canonical accepted what RFC 8785 refuses") from None
    assert canonical(value) == expected
    astral = any(ord(c) > 0xFFFF for c in json.dumps(value, ensure_ascii=False))
    if not astral:  # the parser only grants plain=True to astral-free text
        assert canonical(value, plain=True) == expected
