"""Time-ordered unique event ids (UUIDv7, RFC 9562) and wire timestamps."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
_UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_lock = threading.Lock()
_last = (0, 0)  # (ms, counter) for monotonic ids within one millisecond


def uuid7(now_ms: int | None = None) -> str:
    """A new UUIDv7: sortable by creation time, unique without coordination.

    ``now_ms`` pins the embedded time (an event's ``time``); without it the ids of this
    process are strictly increasing.
    """
    global _last
    if now_ms is not None:
        ms, counter = now_ms, int.from_bytes(os.urandom(2), "big") & 0xFFF
    else:
        with _lock:
            ms = int(time.time() * 1000)
            last_ms, counter = _last
            if ms <= last_ms:
                ms, counter = last_ms, counter + 1
            else:
                counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            if counter > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                ms, counter = ms + 1, 0
            _last = (ms, counter)
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))


def is_uuid7(value: str) -> bool:
    """True for a lowercase canonical UUIDv7 string."""
    return bool(_UUID7.match(value))


def uuid7_time(value: str) -> datetime:
    """The creation time encoded in a UUIDv7."""
    ms = uuid.UUID(value).int >> 80
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_time(moment: datetime) -> str:
    """The wire form of a timestamp: RFC 3339, UTC, millisecond precision, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def real_time(value: str) -> str:
    """``value`` unchanged when it names a moment the calendar has (``2026-02-30`` matches
    the time pattern but is no date); a ``ValueError`` otherwise (a model's validator)."""
    datetime.fromisoformat(value)
    return value


#: the wire form of a timestamp, as a model field: the pattern, and a real moment
WireTime = Annotated[str, Field(pattern=TIME_PATTERN), AfterValidator(real_time)]


def parse_time(value: str) -> datetime:
    """Parse the wire form of a timestamp into an aware UTC datetime."""
    return datetime.fromisoformat(value)


def utcnow() -> datetime:
    """Now, in UTC, truncated to the millisecond precision of the wire."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def uuid7_from(moment: datetime, seed: bytes) -> str:
    """A deterministic UUIDv7 for ``moment`` whose other bits come from SHA-256(``seed``).

    The bus's own events (rejection notices, overdue alerts) use it, so processing the same
    input again after a crash yields the very same event, which readers then deduplicate.
    """
    import hashlib

    ms = int(moment.timestamp() * 1000)
    rand = int.from_bytes(hashlib.sha256(seed).digest()[:10], "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
