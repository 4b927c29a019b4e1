"""The event catalog: every event type of every aggregate kind, read from the kinds' own
modules (``schemas/families/``, one per kind; see ``schemas.family``).

Type names are versioned (``org.jointbus.clue.transferred.v2``). Older versions stay in
the catalog with an upcaster to the next version, so history written years ago is still
read as today's model (the eventsourcing pattern): payloads are upcast after the signature
is verified, never before, because the signature covers the bytes as they were sent.

Everything else — lifecycle rules, projections, the registry's default rights, the SDK,
the JSON Schemas, the tests' sample payloads — reads this catalog.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import ValidationError

from jointbus.schemas import families
from jointbus.schemas.errors import Reason, rejection
from jointbus.schemas.family import TYPE_PREFIX, EventSpec, Kind, Payload, PublisherRole

__all__ = [
    "CATALOG",
    "CURRENT",
    "KINDS",
    "EventSpec",
    "Kind",
    "Payload",
    "family_of",
    "kind_named",
    "kind_of",
    "parse_payload",
    "rights_of",
    "spec_of",
    "type_of",
]


def _discover() -> tuple[Kind, ...]:
    """Every ``KIND`` declared in ``schemas/families/``, in their declared order."""
    found: list[Kind] = []
    for info in pkgutil.iter_modules(families.__path__):
        module = importlib.import_module(f"{families.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, Kind):
            raise TypeError(f"{module.__name__} declares no KIND (every module there is a kind)")
        found.append(kind)
    found.sort(key=lambda k: (k.order, k.name))
    names = [k.name for k in found]
    if len(set(names)) != len(names):
        raise TypeError(f"two event-family modules declare the same kind: {names}")
    owners = [family for k in found for family in {e.family for e in k.events}]
    if len(set(owners)) != len(owners):
        raise TypeError("two kinds declare the same event family")
    orphans = [f"{s.family}.v{s.version}" for k in found for s in k.events if not _next_exists(k, s)]
    if orphans:
        raise TypeError(f"upcasters without a next version: {orphans}")
    return tuple(found)


def _next_exists(kind: Kind, spec: EventSpec) -> bool:
    return spec.upcast is None or any(
        e.family == spec.family and e.version == spec.version + 1 for e in kind.events
    )


#: the aggregate kinds, in order (catalog, rights and figure columns follow it)
KINDS: tuple[Kind, ...] = _discover()
CATALOG: dict[str, EventSpec] = {spec.type: spec for kind in KINDS for spec in kind.events}
#: the newest version of each family, which publishers use
CURRENT: dict[str, EventSpec] = {s.family: s for s in CATALOG.values() if s.is_current}
_VERSIONS: dict[tuple[str, int], EventSpec] = {(s.family, s.version): s for s in CATALOG.values()}
_KIND_OF: dict[str, Kind] = {spec.family: kind for kind in KINDS for spec in kind.events}
_KIND_NAMED: dict[str, Kind] = {kind.name: kind for kind in KINDS}


def kind_of(family: str) -> Kind | None:
    """The aggregate kind an event family belongs to (None: not in the catalog)."""
    return _KIND_OF.get(family)


def kind_named(name: str) -> Kind | None:
    """The aggregate kind called ``name`` (``clue``, ``rectification``, ...)."""
    return _KIND_NAMED.get(name)


def rights_of(publisher: PublisherRole) -> tuple[str, ...]:
    """The publish rights a new registry gives to ``publisher`` (agencies or the router):
    ``<kind>.*`` for a kind whose every family it may send, else the families one by one."""
    rights: list[str] = []
    for kind in KINDS:
        mine = [s.family for s in kind.events if s.is_current and publisher in s.publishers]
        every = [s.family for s in kind.events if s.is_current]
        named = all(f.startswith(f"{kind.name}.") for f in every)
        if mine and mine == every and len(every) > 1 and named:
            rights.append(f"{kind.name}.*")
        else:
            rights.extend(mine)
    return tuple(rights)


def family_of(event_type: str) -> str:
    """The family of a versioned type name (``org.jointbus.clue.transferred.v2`` →
    ``clue.transferred``), whether or not the catalog knows it."""
    return event_type.removeprefix(TYPE_PREFIX).rsplit(".v", 1)[0]


def spec_of(event_type: str) -> EventSpec:
    """The catalog entry of ``event_type``; ``unknown_type`` if there is none."""
    try:
        return CATALOG[event_type]
    except KeyError:
        raise rejection(Reason.UNKNOWN_TYPE, f"unknown event type {event_type[:120]!r}") from None


def type_of(family: str) -> str:
    """The current versioned type name of a family such as ``clue.transferred``."""
    try:
        return CURRENT[family].type
    except KeyError:
        raise rejection(Reason.UNKNOWN_TYPE, f"unknown event family {family[:120]!r}") from None


def parse_payload(event_type: str, data: dict[str, Any]) -> Payload:
    """Validate ``data`` as ``event_type`` and upcast it to the current version's model."""
    spec = spec_of(event_type)
    try:
        payload = spec.model.from_json(data)  # each version is read strictly as itself
        while spec.upcast is not None:  # one version at a time: v1 → v2 → ... → current
            data = spec.upcast(data)
            spec = _VERSIONS[(spec.family, spec.version + 1)]
            payload = spec.model.from_json(data)
        return payload
    except ValidationError as exc:
        raise rejection(Reason.SCHEMA, f"{event_type}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"[:300]
