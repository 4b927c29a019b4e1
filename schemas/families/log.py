"""审计日志告警 — what an agency's witness refused to cosign, told to every agency.

Each agency runs a witness that cosigns the audit log's checkpoints (``audit.witness``).
When it sees two checkpoints of one size with different roots, both signed by the audit
key, the operator has shown two histories: it sends ``log.equivocation`` with both signed
notes, and the router accepts it only if the evidence shows exactly that. Any other
refusal (a size going backwards, a consistency proof that fails, a checkpoint not signed
by the audit key) is ``log.witness_refused``: the witness's word, with the notes it saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from jointbus.schemas.checkpoints import Checkpoint, NoteError, open_checkpoint
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import AggregateState, Context, Kind, Payload, event, refuse
from jointbus.schemas.fields import Name, Text
from jointbus.schemas.ids import parse_time
from jointbus.schemas.registry import AUDIT, Registry

Note = Annotated[str, Field(min_length=1, max_length=2000)]


class LogEquivocation(Payload):
    """Two audit checkpoints of one log and size with different roots, both signed by the
    audit key: the operator showed two histories (a split view)."""

    origin: Name
    size: Annotated[int, Field(ge=1)]
    checkpoints: Annotated[list[Note], Field(min_length=2, max_length=2)]


class WitnessRefused(Payload):
    """A witness refused to cosign a checkpoint: why, that checkpoint, and the last one it
    cosigned (what the refused one contradicts)."""

    problem: Literal["rollback", "inconsistent", "bad_checkpoint_signature", "no_proof"]
    checkpoint: Note
    last_cosigned: Note | None = None
    detail: Text


class AlertState(AggregateState):
    """A reported alert (one subject per report)."""

    kind: str = "log"
    reporter: str


def _reaches_every_agency(env: Envelope, ctx: Context) -> None:
    missing = set(ctx.registry.voters) - {env.sender} - set(env.recipients)
    if missing:
        refuse(Reason.NOT_AUTHORIZED, f"a log alert reaches every agency; missing {min(missing)}")


def audit_checkpoint(note: str, registry: Registry, at: datetime | None = None) -> Checkpoint | None:
    """``note`` as a checkpoint signed by one of the audit service's keys (none revoked by
    ``at``: a stolen, revoked audit key proves nothing new), else None."""
    for key in registry.keys:
        revoked = at is not None and key.revoked_by(at)
        if key.owner == AUDIT and key.purpose == "sign" and not revoked:
            try:
                return open_checkpoint(note, registry.verifier(key.kid))
            except NoteError:
                continue
    return None


def equivocation(
    state: AlertState | None, env: Envelope, payload: LogEquivocation, ctx: Context
) -> AlertState:
    """Accepted only with evidence: both notes signed by the audit key, same origin and
    size as claimed, different roots (a false alarm is refused)."""
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already reported")
    _reaches_every_agency(env, ctx)
    at = ctx.received or parse_time(env.time)
    first, second = (audit_checkpoint(note, ctx.registry, at) for note in payload.checkpoints)
    if first is None or second is None:
        refuse(Reason.BAD_TRANSITION, "the evidence is not two checkpoints signed by the audit key")
    if {first.origin, second.origin} != {payload.origin} or {first.size, second.size} != {payload.size}:
        refuse(Reason.BAD_TRANSITION, "the checkpoints are not of the log and size the alert names")
    if first.root == second.root:
        refuse(Reason.BAD_TRANSITION, "the two checkpoints agree: no split view")
    return AlertState(status="equivocation", reporter=env.sender)


def witness_refused(state: AlertState | None, env: Envelope, _: Any, ctx: Context) -> AlertState:
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already reported")
    _reaches_every_agency(env, ctx)
    return AlertState(status="refused", reporter=env.sender)


_ORIGIN = "jointbus.sichuan-chongqing/audit/v1"
_EXAMPLE_NOTE = f"{_ORIGIN}\n12\n{'A' * 43}=\n\n— {_ORIGIN} {'A' * 94}==\n"

KIND = Kind(
    name="log",
    order=95,
    events=(
        event(
            "log.equivocation",
            1,
            LogEquivocation,
            {
                "origin": "jointbus.sichuan-chongqing/audit/v1",
                "size": 12,
                "checkpoints": [_EXAMPLE_NOTE, _EXAMPLE_NOTE],
            },
            answered=False,
        ),
        event(
            "log.witness_refused",
            1,
            WitnessRefused,
            {
                "problem": "rollback",
                "checkpoint": _EXAMPLE_NOTE,
                "detail": "size 12 is below the 20 cosigned",
            },
            answered=False,
        ),
    ),
    state=AlertState,
    transitions={"log.equivocation": equivocation, "log.witness_refused": witness_refused},
)
