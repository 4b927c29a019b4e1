"""The catalog as a newcomer relies on it: every kind's module is found, declares what the
rest of the bus reads, and its states are frozen, typed and bounded."""

from __future__ import annotations

import dataclasses
import uuid

import pydantic
import pytest

from jointbus.schemas.catalog import CATALOG, CURRENT, KINDS, parse_payload, rights_of
from jointbus.schemas.families.rectification import RectificationState
from jointbus.schemas.family import RECEIPT_MEMORY
from jointbus.schemas.lifecycle import Aggregate, dump_aggregate, load_aggregate
from jointbus.schemas.projections import COLUMNS
from tests.rules import decide


def test_every_kind_module_is_found_once_in_order() -> None:
    """Kinds come from ``schemas/families/`` alone, each once, in their declared order."""
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names)
    assert names[:3] == ["clue", "jointcheck", "rectification"]
    assert [k.order for k in KINDS] == sorted(k.order for k in KINDS)
    assert {s.aggregate for s in CATALOG.values()} == set(names)


@pytest.mark.parametrize("spec", list(CATALOG.values()), ids=lambda s: s.type)
def test_every_type_brings_a_valid_example(spec: object) -> None:
    """The example each module declares validates (and upcasts, for an old version)."""
    assert isinstance(spec, type(next(iter(CATALOG.values()))))
    payload = parse_payload(spec.type, dict(spec.example))
    assert type(payload) is CURRENT[spec.family].model


def test_agencies_may_send_what_the_rules_decide() -> None:
    """Every family agencies publish has a transition (or is a receipt); the router's own
    families have none (an agency that sends one is refused by the rules too)."""
    for kind in KINDS:
        for spec in kind.events:
            if spec.family == "receipt" or not spec.is_current:
                continue
            assert (spec.family in kind.transitions) == ("agency" in spec.publishers), spec.family
    assert rights_of("router") == ("rejection", "acceptance", "deadline.overdue", "receipt")
    assert {"clue.*", "rectification.*", "receipt"} <= set(rights_of("agency"))


def test_columns_are_unique() -> None:
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert COLUMNS[-1] == "rejected"


def accept(aggregate: Aggregate | None, sender: str, family: str, to: list[str], subject: str) -> Aggregate:
    """The aggregate after ``family``, which the rules must accept."""
    after, decision = decide(aggregate, sender, family, to, subject)
    assert decision.accepted, decision
    assert after is not None
    return after


def test_state_is_frozen_typed_and_survives_a_spill() -> None:
    """A transition cannot be undone by mutating what it returned, and the form a store
    spills to disk reads back as the same typed state."""
    subject = f"rectification/{uuid.uuid4()}"
    issued = accept(None, "sc-yibin", "rectification.issued", ["sc-zigong"], subject)
    assert isinstance(issued.state, RectificationState)
    with pytest.raises(pydantic.ValidationError):
        issued.state.status = "verified"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        issued.state = None  # type: ignore[misc]
    assert load_aggregate(dump_aggregate(issued)) == issued


def test_an_aggregate_remembers_a_bounded_number_of_events() -> None:
    """Receipts may refer to the last RECEIPT_MEMORY accepted events; older ones are
    forgotten, so a long-lived aggregate's memory does not grow without bound."""
    subject = f"rectification/{uuid.uuid4()}"
    agg = accept(None, "sc-yibin", "rectification.issued", ["sc-zigong"], subject)
    first = agg.accepted[0].id
    for _ in range(RECEIPT_MEMORY + 5):
        agg = accept(agg, "sc-zigong", "rectification.progress_reported", ["sc-yibin"], subject)
    assert len(agg.accepted) == RECEIPT_MEMORY
    assert agg.find(first) is None


def test_a_kind_cannot_squat_another_kinds_subject() -> None:
    """A bulletin posted on ``governance/registry`` is refused, so no member can block the
    registry's governance by taking its subject first."""
    after, decision = decide(None, "sc-zigong", "bulletin.posted", ["sc-luzhou"], "governance/registry")
    assert (after, decision.reason) == (None, "bad_transition")


def test_a_wrongly_declared_kind_fails_when_its_module_loads() -> None:
    """A state whose ``kind`` is not the kind's name, a transition for another kind's family,
    or an open column that is not a column: a readable error at import, not silent refusals."""
    from jointbus.schemas.families.bulletin import KIND, BulletinState

    class Misnamed(BulletinState):
        kind: str = "bulletins"

    with pytest.raises(TypeError, match="defaults to 'bulletins'"):
        dataclasses.replace(KIND, state=Misnamed)
    with pytest.raises(TypeError, match="other kinds"):
        dataclasses.replace(
            KIND, transitions={**KIND.transitions, "clue.accepted": KIND.transitions["bulletin.posted"]}
        )
    with pytest.raises(TypeError, match="open_column"):
        dataclasses.replace(KIND, open_column="bulletins_open")


def test_a_refusal_updates_the_remembered_event_in_place() -> None:
    """Refusing an event does not make it the newest remembered one (the bound keeps the
    last accepted events, not the last touched)."""
    subject = f"rectification/{uuid.uuid4()}"
    agg = accept(None, "sc-yibin", "rectification.issued", ["sc-zigong"], subject)
    agg = accept(agg, "sc-zigong", "rectification.progress_reported", ["sc-yibin"], subject)
    first, second = agg.accepted
    again = agg.with_accepted(dataclasses.replace(first, refused_by=("sc-zigong",)))
    assert [a.id for a in again.accepted] == [first.id, second.id]
    assert again.accepted[0].refused_by == ("sc-zigong",)


def test_old_versions_are_upcast_one_version_at_a_time() -> None:
    """A v1 clue transfer reads as the current model (each upcaster goes to the next version)."""
    (v1,) = [s for s in CATALOG.values() if s.family == "clue.transferred" and s.version == 1]
    payload = parse_payload(v1.type, dict(v1.example))
    assert type(payload) is CURRENT["clue.transferred"].model
