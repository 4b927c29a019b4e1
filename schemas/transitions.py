"""The lifecycle state machines as tables, found by running the rules themselves.

For each kind with a status machine, a **cast** says who plays which part (the clue's
sender and receiver, the check's convener and invitees, ...) and who sends each event
type. Starting from a new subject, every event type is tried in every status reachable so
far, through the same router code path the bus runs (signature, ledger, rules); what is
accepted leads to a status, what is refused gives its reason code. The tables in
``docs/wire-format.md`` and the lifecycle vectors are generated from these runs, so
neither can drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jointbus.schemas.conformance import ReferenceBus, Verdict
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.forge import Forge
from jointbus.schemas.vectors import VECTOR_TIME

#: every step of a lifecycle vector arrives one second after the events' time
ARRIVAL = VECTOR_TIME + timedelta(seconds=1)


@dataclass(frozen=True)
class Move:
    """One event type as its rightful party sends it, to the parties the rules expect."""

    family: str
    role: str
    sender: str
    to: tuple[str, ...]


@dataclass(frozen=True)
class Cast:
    """Who plays which part in one kind's lifecycle."""

    kind: str
    roles: dict[str, str]  # role → agency
    moves: tuple[Move, ...]


def _cast(kind: str, roles: dict[str, str], moves: list[tuple[str, str, list[str]]]) -> Cast:
    return Cast(
        kind,
        roles,
        tuple(Move(family, role, roles[role], tuple(roles[r] for r in to)) for family, role, to in moves),
    )


CASTS: tuple[Cast, ...] = (
    _cast(
        "clue",
        {"sender": "sc-zigong", "receiver": "cq-yongchuan"},
        [
            ("clue.transferred", "sender", ["receiver"]),
            ("clue.acknowledged", "receiver", ["sender"]),
            ("clue.accepted", "receiver", ["sender"]),
            ("clue.returned", "receiver", ["sender"]),
            ("clue.disposition_reported", "receiver", ["sender"]),
        ],
    ),
    _cast(
        "jointcheck",
        {"convener": "sc-yibin", "invitee": "sc-zigong", "other invitee": "sc-neijiang"},
        [
            ("jointcheck.invited", "convener", ["invitee", "other invitee"]),
            ("jointcheck.responded", "invitee", ["convener", "other invitee"]),
            ("jointcheck.findings_reported", "convener", ["invitee", "other invitee"]),
        ],
    ),
    _cast(
        "rectification",
        {"issuer": "sc-zigong", "responsible": "cq-yongchuan"},
        [
            ("rectification.issued", "issuer", ["responsible"]),
            ("rectification.progress_reported", "responsible", ["issuer"]),
            ("rectification.completion_reported", "responsible", ["issuer"]),
            ("rectification.verified", "issuer", ["responsible"]),
            ("rectification.reopened", "issuer", ["responsible"]),
        ],
    ),
    _cast(
        "bulletin",
        {"author": "sc-luzhou", "reader": "cq-dazu"},
        [("bulletin.posted", "author", ["reader"]), ("bulletin.withdrawn", "author", ["reader"])],
    ),
)


@dataclass(frozen=True)
class Cell:
    """One event type tried in one status: the status it leads to, or the refusal."""

    kind: str
    before: str | None  # None: a subject with no event yet
    move: Move
    path: tuple[Move, ...]  # the accepted events that reach ``before``
    after: str | None
    reason: str | None


def _status(bus: ReferenceBus, subject: str) -> str | None:
    aggregate = bus.ledger.aggregate(subject)
    return aggregate.state.status if aggregate is not None and aggregate.state is not None else None


def play(
    forge: Forge, subject: str, moves: tuple[Move, ...]
) -> tuple[list[dict[str, Any]], list[Verdict], str | None]:
    """Sign and route ``moves`` on ``subject`` in order: the envelopes, the router's verdicts,
    and the subject's status at the end."""
    bus = ReferenceBus(forge.registry, ARRIVAL)
    envelopes, verdicts = [], []
    for move in moves:
        env = forge.event(move.sender, move.family, subject, list(move.to), _example(move.family))
        envelopes.append(env)
        verdicts.append(bus.route(to_wire(env), move.sender))
    return envelopes, verdicts, _status(bus, subject)


def _example(family: str) -> dict[str, Any]:
    from jointbus.schemas.catalog import CURRENT

    return dict(CURRENT[family].example)


def explore(cast: Cast, forge: Forge) -> Iterator[Cell]:
    """Every event type of ``cast`` tried in every status reachable from a new subject,
    breadth first (the shortest path to each status)."""
    queue: list[tuple[str | None, tuple[Move, ...]]] = [(None, ())]
    seen: set[str | None] = {None}
    while queue:
        before, path = queue.pop(0)
        for move in cast.moves:
            _, verdicts, after = play(forge, f"{cast.kind}/table", (*path, move))
            last = verdicts[-1]
            if any(v.verdict != "accepted" for v in verdicts[:-1]):
                raise AssertionError(f"the path to {before!r} of {cast.kind} no longer holds")
            accepted = last.verdict == "accepted"
            yield Cell(cast.kind, before, move, path, after if accepted else None, last.reason)
            if accepted and after not in seen:
                seen.add(after)
                queue.append((after, (*path, move)))


def tables(forge: Forge) -> dict[str, list[Cell]]:
    """Every cast's cells, by kind."""
    return {cast.kind: list(explore(cast, forge)) for cast in CASTS}


def markdown(cells_by_kind: dict[str, list[Cell]]) -> str:
    """The tables as Markdown: rows are statuses, columns event types, cells the outcome."""
    out: list[str] = []
    for cast in CASTS:
        cells = cells_by_kind[cast.kind]
        families = [m.family for m in cast.moves]
        statuses: list[str | None] = []
        for cell in cells:
            if cell.before not in statuses:
                statuses.append(cell.before)
        role_of = {agency: role for role, agency in cast.roles.items()}
        sent = "; ".join(
            f"`{m.family.split('.', 1)[1]}` {m.role} → {', '.join(role_of[a] for a in m.to)}"
            for m in cast.moves
        )
        out += [f"**{cast.kind}** — {sent}"]
        out += ["", "| status | " + " | ".join(f"`{f.split('.', 1)[1]}`" for f in families) + " |"]
        out += ["|---|" + "---|" * len(families)]
        for status in statuses:
            row = [next(c for c in cells if c.before == status and c.move.family == f) for f in families]
            shown = [f"→ {c.after}" if c.after is not None else f"✗ `{c.reason}`" for c in row]
            out.append(f"| {status or '(new)'} | " + " | ".join(shown) + " |")
        out.append("")
    return "\n".join(out)


BEGIN, END = "<!-- lifecycle:begin -->\n", "<!-- lifecycle:end -->"


def rewrite_tables(document: str) -> str:
    """``document`` with the text between its lifecycle markers replaced by the tables."""
    from jointbus.schemas.vectors import vector_federation

    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {BEGIN.strip()} ... {END} markers")
    fresh = markdown(tables(Forge(vector_federation()[0])))
    return document[: start + len(BEGIN)] + fresh + document[end:]
