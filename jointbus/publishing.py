"""``jointbus publish``: one event, or many from a JSON-lines file over one connection.

Each event is checked before anything is signed: a family the agency may publish, every
payload problem at once with the type's fields. In bulk, a bad line is reported by its line
number and reason and the others are published.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from jointbus import context, ui
from jointbus.schemas.catalog import CURRENT, EventSpec, Payload, family_of
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import JointbusError
from jointbus.streams import keystore
from jointbus.streams.sdk import Publisher, new_subject
from jointbus.streams.settings import Settings


def payload_errors(model: type[Payload], payload: object) -> list[tuple[str, str]]:
    """Every problem of ``payload`` as ``model`` at once (not one per try), as (field, problem)."""
    try:
        model.from_json(payload)
    except ValidationError as exc:
        return [
            (".".join(str(p) for p in e["loc"]) or "(payload)", e["msg"])
            for e in exc.errors(include_url=False)
        ]
    return []


def payload_problems(model: type[Payload], payload: object) -> list[str]:
    """``payload_errors`` as readable lines."""
    return [f"{where}: {problem}" for where, problem in payload_errors(model, payload)]


def field_list(model: type[BaseModel]) -> str:
    """The payload fields of ``model``: required ones bare, optional ones with a ``?``."""
    return ", ".join(f"{name}{'' if f.is_required() else '?'}" for name, f in model.model_fields.items())


class PayloadError(JointbusError):
    """An event refused before signing (``unknown_type`` or ``schema``), naming the field
    at fault (``type``, or ``data.<path>`` of the first payload problem)."""

    def __init__(self, message: str, *, reason: str, field: str) -> None:
        super().__init__(message, reason=reason)
        self.field = field


def checked(family: str, payload: object) -> EventSpec:
    """The catalog entry of ``family`` (or a full type name: its family) if agencies publish
    it and ``payload`` fits it; otherwise a ``PayloadError`` naming every problem."""
    spec = CURRENT.get(family_of(family) if family.startswith("org.") else family)
    if spec is None or "agency" not in spec.publishers:
        agencies_send = sorted(f for f, s in CURRENT.items() if "agency" in s.publishers)
        raise PayloadError(
            f"{family!r} is not a family agencies publish; they publish: {', '.join(agencies_send)}",
            reason="unknown_type",
            field="type",
        )
    problems = payload_errors(spec.model, payload)
    if problems:
        raise PayloadError(
            f"{spec.family} payload: {'; '.join(f'{where}: {what}' for where, what in problems)} "
            f"(fields: {field_list(spec.model)})",
            reason="schema",
            field=f"data.{problems[0][0]}",
        )
    return spec


@dataclass
class Line:
    """One event of a JSON-lines file, checked."""

    number: int
    family: str
    subject: str
    to: list[str]
    data: dict[str, Any]
    causation: str | None = None
    correlation: str | None = None


@dataclass
class Outcome:
    """What a bulk publish did."""

    published: list[tuple[int, str]] = field(default_factory=list)  # (line, event id)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # routed: (line, reason, detail)
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)


def parse_lines(lines: Iterable[str], outcome: Outcome) -> list[Line]:
    """The events of a JSON-lines file (``{"type", "to", "data", "subject"?, "causation"?,
    "correlation"?}`` per line); a line that is not one goes to ``outcome.refused``."""
    good: list[Line] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
            if not isinstance(item, dict):
                raise JointbusError("a line is one JSON object", reason="schema")
            family, data = str(item.get("type", "")), item.get("data")
            if not isinstance(data, dict):
                raise JointbusError("`data` is the payload, a JSON object", reason="schema")
            to = item.get("to", [])
            to = [r.strip() for r in to.split(",")] if isinstance(to, str) else [str(r) for r in to]
            spec = checked(family, data)
            subject = str(item.get("subject") or new_subject(spec.aggregate))
            good.append(
                Line(number, family, subject, to, data, item.get("causation"), item.get("correlation"))
            )
        except json.JSONDecodeError as exc:
            outcome.refused.append((number, "schema", f"not JSON: {exc.msg}"))
        except JointbusError as exc:
            outcome.refused.append((number, str(exc.reason), exc.message))
    return good


async def publish_lines(
    cfg: Settings, agency: str, lines: list[Line], outcome: Outcome, *, routed: bool = False
) -> None:
    """Publish ``lines`` over one connection, many in flight, with a progress bar; each is
    acknowledged by the broker before it counts as published. ``routed``: then wait for the
    router's decision on each, and list the rejected ones."""
    registry = keystore.load_registry(cfg.keystore_dir)
    ring = keystore.load_keyring(cfg.keystore_dir, agency)
    progress = Progress(
        TextColumn("publishing"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=ui.err,
        transient=True,
    )
    async with Publisher(agency, ring, registry, cfg.bootstrap_servers, **context.kafka(cfg, agency)) as pub:
        if routed:
            await pub.watch_decisions()
        with progress:
            task = progress.add_task("publish", total=len(lines))
            pending: list[tuple[Line, str, asyncio.Future[Any]]] = []
            for line in lines:
                try:
                    event_id, future = await pub.submit(
                        line.family,
                        line.subject,
                        line.to,
                        line.data,
                        causationid=line.causation,
                        correlationid=line.correlation,
                    )
                    pending.append((line, event_id, future))
                except JointbusError as exc:
                    outcome.refused.append((line.number, str(exc.reason), exc.message))
                    progress.advance(task)
            for line, event_id, future in pending:
                try:
                    await future
                    outcome.published.append((line.number, event_id))
                except Exception as exc:  # the broker refused this one: reported, the rest go on
                    outcome.refused.append(
                        (line.number, "not_published", f"{type(exc).__name__}: {exc}"[:200])
                    )
                progress.advance(task)
        if routed and outcome.published:  # every published event's decision, bounded
            numbers = {event_id: n for n, event_id in outcome.published}
            for result in await pub.decisions(list(numbers), within=max(30.0, len(numbers) / 100)):
                if not result.accepted:
                    outcome.rejected.append((numbers[result.event_id], str(result.reason), result.detail))


def field_rows(spec: EventSpec) -> list[list[str]]:
    """One row per payload field of ``spec``: name, JSON type, required, description."""
    schema = spec.model.model_json_schema()
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            [name, _json_type(prop), "yes" if name in required else "", str(prop.get("description", ""))[:80]]
        )
    return rows


def _json_type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " | ".join(_json_type(p) for p in prop["anyOf"])
    kind = str(prop.get("type", "any"))
    if kind == "array":
        return f"list[{_json_type(prop.get('items', {}))}]"
    if "format" in prop:
        return f"{kind} ({prop['format']})"
    if "enum" in prop:
        return " | ".join(str(v) for v in prop["enum"])
    return kind


async def answering(cfg: Settings, agency: str, event_id: str) -> Envelope:
    """The event ``event_id`` of ``agency``'s inbox (read to its end, verified), which a
    reply continues; ``not_found`` when the inbox does not hold it."""
    from jointbus.streams.sdk import Subscriber

    registry = keystore.load_registry(cfg.keystore_dir)
    ring = keystore.load_keyring(cfg.keystore_dir, agency)
    kafka = context.kafka(cfg, agency)
    found: Envelope | None = None
    async with Subscriber(
        agency, ring, registry, cfg.bootstrap_servers, group_id=False, receipts=False, until_end=True, **kafka
    ) as sub:
        async for delivery in sub:
            if delivery.id == event_id:
                found = delivery.envelope
    if found is None:
        raise JointbusError(f"no event {event_id} in the inbox of {agency}", reason="not_found")
    return found
