"""Reading the audit log into the console's model, and following it as it grows; reading
the signed checkpoints and the witnesses' cosignatures for the log page. Always as the
``auditor`` principal: the console holds no other credential and no private key."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import structlog

from jointbus import context
from jointbus.audit.cosigned import read_cosigned
from jointbus.audit.notes import open_checkpoint
from jointbus.audit.witnessing import cosignature_lines, witnessed
from jointbus.console.state import LogState
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.registry import AUDIT, Registry
from jointbus.streams.reader import read_texts, read_topic
from jointbus.streams.security import AUDITOR
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, CHECKPOINT_TOPIC

log = structlog.get_logger(__name__)

#: how long the follower waits before reading again after Kafka failed it
RETRY_SECONDS = 2.0


async def catch_up(state: LogState, cfg: Settings) -> int:
    """Fold every record the topic holds now; the number read. Kafka's refusals (password,
    ACL, no broker) surface as their typed errors, for the command to say in one line."""
    n = 0
    kw = context.kafka(cfg, AUDITOR)
    async for offset, _, value in read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, state.next_offset, **kw):
        state.add(offset, value)
        n += 1
    await state.grew()
    return n


async def follow(state: LogState, cfg: Settings) -> None:
    """Fold records as the router appends them, waking the pages after each; reads again
    after a failure (logged), until cancelled."""
    kw = context.kafka(cfg, AUDITOR)
    while True:
        try:
            records = read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, state.next_offset, follow=True, **kw)
            async for offset, _, value in records:
                state.add(offset, value)
                await state.grew()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka went away: say so and read again
            log.warning("console.follow_failed", error=str(exc), retry_s=RETRY_SECONDS)
        await asyncio.sleep(RETRY_SECONDS)


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint on ``jointbus.checkpoints`` and who cosigned it."""

    size: int
    root: str
    signed: bool
    witnesses: tuple[str, ...]
    described: str


async def checkpoints(cfg: Settings, registry: Registry) -> list[CheckpointRow]:
    """Every checkpoint published, newest first: its size and root when the audit key
    signed it, and the agencies whose witnesses cosigned it (their lines verified, each read
    from that witness's own topic only)."""
    kw = context.kafka(cfg, AUDITOR)
    notes = await read_texts(cfg.bootstrap_servers, CHECKPOINT_TOPIC, **kw)
    # each witness's own topic, each record cut to what that witness vouches for
    cosigned = (await read_cosigned(cfg.bootstrap_servers, registry.agencies, **kw)).texts
    public = registry.verifier(registry.current_key(AUDIT, "sign", registry.issued_at).kid)
    rows = []
    for note in notes:
        try:
            cp = open_checkpoint(note, public)
        except JointbusError as exc:
            rows.append(CheckpointRow(-1, "", False, (), f"{exc.message} [{exc.reason}]"))
            continue
        found = witnessed(cp, cosignature_lines(cp, cosigned), registry)
        root = base64.b64encode(cp.root).decode()
        rows.append(CheckpointRow(cp.size, root, True, found.agencies, found.describe()))
    return sorted(rows, key=lambda r: -r.size)
