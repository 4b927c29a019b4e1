"""What an aggregate kind declares, in one module of ``schemas/families/``.

A kind (clue, joint check, rectification, ...) is everything that shares a ``subject``
prefix. Its module declares, in one place:

- its event types: payload models, versions and upcasters, whether the payload is sealed,
  who may publish it (agencies or the router), whether recipients answer with a receipt,
  and a valid example payload;
- its **state**: a frozen model; a transition takes the state (``None`` for a new
  aggregate) and one verified event and returns the next state, or refuses with a reason;
- its **figures**: the projection columns it adds and how an accepted event counts;
- its **deadline**, if it has one.

``schemas.catalog`` collects the modules; the lifecycle rules, the projections, the
registry's default rights, the SDK and the tests all read the catalog, so a new kind is
one new module (plus its vectors and tests), nothing else.
"""

from __future__ import annotations

import builtins
import functools
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from jointbus.schemas.errors import Reason, rejection
from jointbus.schemas.wiremodel import WireModel, null_error

if TYPE_CHECKING:
    from jointbus.schemas.envelope import Envelope
    from jointbus.schemas.registry import Registry

TYPE_PREFIX = "org.jointbus."
#: how many accepted events of one aggregate a receipt may still refer to (the oldest are
#: forgotten first): an aggregate's memory is bounded however long its history grows
RECEIPT_MEMORY = 256

PublisherRole = Literal["agency", "router"]


class Payload(WireModel):
    """Base of every event payload: closed (unknown fields are an error), immutable, and
    without ``null`` (an optional field is omitted)."""

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Parsed JSON ``data`` as this payload, typed as strictly as JSON itself: ``1`` is
        not ``true`` and ``"5"`` is not ``5`` (a lax reading lets two implementations
        disagree about one event)."""
        where = unknown_key(cls, data)
        if where is not None:  # one error, where the validator would build one per key
            detail = PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")
            raise ValidationError.from_exception_data(
                cls.__name__, [{"type": detail, "loc": where, "input": None}]
            )
        text = json.dumps(data, ensure_ascii=False)
        error = null_error(cls.__name__, data) if "null" in text else None  # a walk only then
        if error is not None:
            raise error
        return cls.model_validate_json(text, strict=True)


def unknown_key(model: type[BaseModel], data: Any) -> tuple[str | int, ...] | None:
    """Where the first unknown key of ``data`` read as ``model`` is, following fields that
    hold models or lists of models (None: none found). Cheap set operations per object: a
    record of thousands of unknown keys costs the validator one error, not thousands."""
    if not isinstance(data, dict):
        return None
    fields = model.model_fields
    if not data.keys() <= fields.keys():
        return (min(data.keys() - fields.keys()),)
    for name, inner in _nested_models(model):
        value = data.get(name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            found = unknown_key(inner, item)
            if found is not None:
                return (name, *(() if index is None else (index,)), *found)
    return None


@functools.cache
def _nested_models(model: type[BaseModel]) -> tuple[tuple[str, type[BaseModel]], ...]:
    """The fields of ``model`` that hold a model, or a list or tuple of one model."""
    found = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        args = typing.get_args(kind)
        if typing.get_origin(kind) in (list, tuple) and args:
            kind = args[0]
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.append((name, kind))
    return tuple(found)


class AggregateState(BaseModel):
    """Base of every kind's state: frozen and closed (and its fields immutable values), so a
    rejected event cannot leak into it; transitions build the next state with a constructor
    or :func:`evolve`, both validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    status: str


St = TypeVar("St", bound=BaseModel)


def evolve(state: St, **changes: Any) -> St:
    """``state`` with ``changes``, validated like a new state: what the router keeps in
    memory is exactly what an auditor reads back after spilling it to disk."""
    return type(state).model_validate({**state.model_dump(), **changes})


@dataclass(frozen=True)
class EventSpec:
    """What the bus knows of one versioned event type."""

    type: str
    family: str
    version: int
    model: builtins.type[Payload]
    aggregate: str
    sensitive: bool = False
    upcast: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: who may publish it: member agencies (rights in the registry) or the router
    publishers: tuple[PublisherRole, ...] = ("agency",)
    #: recipients answer it with a signed receipt (not receipts and bus notices)
    answered: bool = True
    #: a valid payload, for documentation, ``jointbus publish --type`` and the tests
    example: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_current(self) -> bool:
        return self.upcast is None


def event(
    family: str,
    version: int,
    model: type[Payload],
    example: Mapping[str, Any],
    *,
    sensitive: bool = False,
    upcast: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    publishers: tuple[PublisherRole, ...] = ("agency",),
    answered: bool = True,
) -> EventSpec:
    """An event type (its kind is set by the ``Kind`` that lists it)."""
    return EventSpec(
        f"{TYPE_PREFIX}{family}.v{version}",
        family,
        version,
        model,
        "",
        sensitive=sensitive,
        upcast=upcast,
        publishers=publishers,
        answered=answered,
        example=example,
    )


def refuse(reason: Reason, detail: str) -> NoReturn:
    """Refuse the event being decided (a transition's only way to say no): a
    ``ContractError`` of the class that goes with ``reason``."""
    raise rejection(reason, detail)


@dataclass(frozen=True)
class Accepted:
    """An accepted event a receipt may refer to, and who refused it."""

    id: str
    sender: str
    type: str
    recipients: tuple[str, ...]
    refused_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Aggregate:
    """One subject: its kind's state (``None`` until an event created it) and the bounded
    list of its recent accepted events (for receipts), kept apart from the domain state."""

    subject: str
    state: AggregateState | None = None
    accepted: tuple[Accepted, ...] = ()

    def find(self, event_id: str) -> Accepted | None:
        """The accepted event ``event_id`` of this aggregate, if still remembered."""
        return next((a for a in self.accepted if a.id == event_id), None)

    def with_accepted(self, item: Accepted) -> Aggregate:
        """This aggregate with ``item`` remembered: a new event last (the oldest forgotten
        past the bound), a known one updated where it is."""
        if any(a.id == item.id for a in self.accepted):
            return replace(self, accepted=tuple(item if a.id == item.id else a for a in self.accepted))
        return replace(self, accepted=(*self.accepted, item)[-RECEIPT_MEMORY:])


S = TypeVar("S", bound=AggregateState)


@dataclass(frozen=True)
class Context:
    """What a transition may consult besides its own aggregate: the registry the event was
    verified against, other aggregates (the chair chain), and the bus's policy."""

    registry: Registry
    lookup: Callable[[str], Aggregate | None]
    ack_within: timedelta
    #: when the event arrived (the broker's append time), for rules that take effect then
    received: datetime | None = None

    def state_of(self, subject: str, model: type[S]) -> S | None:
        """Another aggregate's state if it is of ``model``'s kind."""
        other = self.lookup(subject)
        return other.state if other is not None and isinstance(other.state, model) else None


#: a transition: state before (None: new aggregate), the verified event, its payload (None
#: when sealed), context → the state after; or ``refuse(...)``
Transition = Callable[[Any, "Envelope", Any, Context], AggregateState]


@dataclass(frozen=True)
class Deadline:
    """A deadline an aggregate must still meet."""

    what: str  # one of ``ItemOverdue.what`` (schemas/families/notice.py)
    deadline: date
    due: datetime
    responsible: str
    parties: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """An accepted event as a projection sees it (from the audit record alone)."""

    family: str
    sender: str
    subject: str
    recipients: tuple[str, ...]
    event: Mapping[str, Any]

    def payload(self) -> Payload | None:
        """The plaintext payload, upcast; ``None`` when sealed or unreadable."""
        from jointbus.schemas.catalog import parse_payload
        from jointbus.schemas.errors import ContractError

        try:
            return parse_payload(str(self.event["type"]), self.event["data"])
        except (ContractError, KeyError, TypeError):
            return None


class Tally(Protocol):
    """What a kind's projection handler may do to the figures."""

    def count(self, agency: str, column: str, n: int = 1) -> None:
        """Add ``n`` to ``agency``'s ``column`` (non-members are not counted)."""

    def total(self, figure: str, n: int = 1) -> None:
        """Add ``n`` to a collaboration-level figure (counted once, not per agency)."""

    def track(self, subject: str, kind: str, holders: tuple[str, ...], status: str, by: str = "") -> None:
        """Start following an item (its holders own it while it is open; ``by`` opened it)."""

    def restatus(self, subject: str, status: str) -> None:
        """A followed item's new status (an unknown subject is ignored)."""

    def refused(self, subject: str, event_type: str) -> None:
        """A recipient refused the delivery of ``event_type`` on a followed item."""


def current_chair(ctx: Context) -> str | None:
    """The chair of the joint meeting now: the registry's (it passes by the members'
    decision, a governance change, like any other registry change)."""
    return ctx.registry.chair


def recorded_by_chair(kind: str) -> Transition:
    """A record made once, by the current chair, on a fresh subject (meetings, mechanisms)."""

    def recorded(state: AggregateState | None, env: Envelope, _: Any, ctx: Context) -> AggregateState:
        chair = current_chair(ctx)
        if env.sender != chair:
            refuse(Reason.NOT_AUTHORIZED, f"only the current chair {chair} records a {kind}")
        if state is not None:
            refuse(Reason.BAD_TRANSITION, f"{env.subject} is already recorded")
        return AggregateState(kind=kind, status="recorded")

    return recorded


def item_figures(
    kind: str,
    opened: tuple[str, str],
    sender_counts: Mapping[str, str],
    status_after: Mapping[str, str],
) -> Callable[[Tally, Fact], None]:
    """The projection of a kind whose items open and then change status: ``sender_counts``
    counts each family for its sender, the ``opened`` family (with its first status) starts
    following the item, held by its recipients, and ``status_after`` moves it on."""
    opening, first_status = opened

    def project(tally: Tally, fact: Fact) -> None:
        column = sender_counts.get(fact.family)
        if column is not None:
            tally.count(fact.sender, column)
            tally.total(column)
        if fact.family == opening:
            tally.track(fact.subject, kind, fact.recipients, first_status, by=fact.sender)
        elif fact.family in status_after:
            tally.restatus(fact.subject, status_after[fact.family])

    return project


@dataclass(frozen=True)
class Kind:
    """Everything one aggregate kind declares (see the module docstring)."""

    name: str
    #: position among kinds: catalog order, rights order, projection column order
    order: int
    events: tuple[EventSpec, ...]
    state: type[AggregateState] | None = None
    transitions: Mapping[str, Transition] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    project: Callable[[Tally, Fact], None] | None = None
    deadline: Callable[[Any], Deadline | None] | None = None
    #: a refused receipt for an event of family F moves the state from status a to b
    refusable: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: the column counting open items per holder, and the statuses that are open
    open_column: str | None = None
    open_statuses: tuple[str, ...] = ()
    #: the registry version an accepted event of this kind brings into force (governance)
    registry_change: Callable[[Any, Envelope, Context], Registry | None] | None = None
    #: the obligations a state holds open, as (opened by, owed by) agency pairs: what the
    #: ledger counts against the policy's ``open_per_pair`` (a flood cannot charge a
    #: recipient with more than that)
    obligations: Callable[[Any], tuple[tuple[str, str], ...]] | None = None

    def __post_init__(self) -> None:
        # every event type belongs to this kind, whatever its family is called
        object.__setattr__(self, "events", tuple(replace(e, aggregate=self.name) for e in self.events))
        problems = self.problems()
        if problems:
            raise TypeError(f"kind {self.name!r} is declared wrongly: {'; '.join(problems)}")

    def problems(self) -> list[str]:
        """What is inconsistent in this declaration (caught when its module is imported)."""
        families = [e.family for e in self.events]
        current = [e.family for e in self.events if e.is_current]
        found = []
        if len(set(current)) != len(current):
            found.append("a family has two current versions")
        if self.state is not None and self.state is not AggregateState:
            default = self.state.model_fields["kind"].default
            if default != self.name:
                found.append(f"{self.state.__name__}.kind defaults to {default!r}, not {self.name!r}")
        for name, keys in (("transitions", self.transitions), ("refusable", self.refusable)):
            strangers = sorted(set(keys) - set(families))
            if strangers:
                found.append(f"{name} name families of other kinds: {strangers}")
        if self.open_column is not None and self.open_column not in self.columns:
            found.append(f"open_column {self.open_column!r} is not one of columns")
        return found

    def after_refusal(self, family: str, status: str) -> str | None:
        """The status an item moves to when a delivery of ``family`` is refused while it is
        in ``status`` (None: it stays)."""
        move = self.refusable.get(family)
        return move[1] if move is not None and move[0] == status else None
