"""Reading the witnesses' cosignatures: one topic per witness, each read with a bounded parse.

Each agency's witness publishes to its own topic, ``jointbus.cosignatures.<agency>``, which
only that agency may write (``streams.security.acl_plan``): what it writes there can crowd
no other witness's topic, and its volume is held by its Kafka produce quota. Readers still
trust nothing a record says for itself. :func:`owned_note` keeps of a record only what the
topic's owner can vouch for — the checkpoint body, the audit service's signature lines and
the *owner's* witness line — or nothing, so a line claiming another witness is never even
looked at, and whether what is kept verifies is ``audit.witnessing``'s business, under the
owner's witness key. Any bytes at all are decided (kept or passed over and counted); none
raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from jointbus.audit.cosign import witness_name
from jointbus.schemas.checkpoints import MAX_NOTE, ORIGIN
from jointbus.streams.errors import StreamsError
from jointbus.streams.reader import read_topic
from jointbus.streams.topics import cosignature_topic

log = structlog.get_logger("jointbus.cosigned")

#: a checkpoint body of the log's form: origin, a size of at most 20 digits, a root
_BODY = re.compile(r"(0|[1-9][0-9]{0,19})\n[A-Za-z0-9+/]{43}=\Z")
#: of the audit service's signature lines, at most this many are kept (key rotation)
AUDIT_LINES = 4


def owned_note(agency: str, value: bytes | None) -> str | None:
    """The cosigned note a record of ``agency``'s cosignature topic holds, cut to its body,
    the audit service's signature lines and ``agency``'s own witness line; None when the
    bytes are no such note (empty, over ``MAX_NOTE``, not UTF-8, another form, no line of
    that witness). Pure and bounded: one pass over at most 8 KB."""
    if not value or len(value) > MAX_NOTE:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body, sep, signatures = text.partition("\n\n")
    origin, _, rest = body.partition("\n")
    if not sep or origin != ORIGIN or not _BODY.match(rest):
        return None
    audit_prefix, own_prefix = f"— {ORIGIN} ", f"— {witness_name(agency)} "
    audit: list[str] = []
    own: str | None = None
    for line in signatures.splitlines():  # the split every later reader makes
        if line.startswith(audit_prefix) and len(audit) < AUDIT_LINES:
            audit.append(line)
        elif own is None and line.startswith(own_prefix):
            own = line
    if own is None:
        return None
    return body + "\n\n" + "".join(f"{line}\n" for line in (*audit, own))


@dataclass(frozen=True)
class Cosigned:
    """What the witnesses' topics hold: the notes kept (each cut by :func:`owned_note`,
    with the agency whose topic held it) and how many records were passed over."""

    notes: tuple[tuple[str, str], ...]
    skipped: int
    missing: tuple[str, ...] = ()  # members whose topic does not exist (not provisioned yet)

    @property
    def texts(self) -> list[str]:
        """The notes alone, for ``audit.witnessing`` and the verifier."""
        return [note for _, note in self.notes]


async def read_cosigned(bootstrap: str, agencies: Iterable[str], **kafka: Any) -> Cosigned:
    """Every cosigned note on the cosignature topics of ``agencies`` (a registry's members),
    each record decided by :func:`owned_note`. A member's topic that does not exist yet is
    named in ``missing``; Kafka's other refusals (password, ACL) surface as their errors."""
    notes: list[tuple[str, str]] = []
    skipped = 0
    missing: list[str] = []
    for agency in agencies:
        bound = log.bind(agency=agency, topic=cosignature_topic(agency))
        try:
            async for offset, _, value in read_topic(bootstrap, cosignature_topic(agency), **kafka):
                note = owned_note(agency, value)
                if note is None:
                    skipped += 1
                    bound.warning("cosignature record passed over", offset=offset)
                else:
                    notes.append((agency, note))
        except StreamsError as exc:
            if exc.reason != "unknown_topic":
                raise
            missing.append(agency)
            bound.warning("no cosignature topic for this member yet")
    return Cosigned(tuple(notes), skipped, tuple(missing))
