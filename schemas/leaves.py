"""Which audit-topic records become leaves: the rule every party applies identically.

A record is a leaf unless its position was logged before. The router writes a decision
again after a crash (the same bytes, or at least the same decision), and the first record
of each position is the one that counts, whatever order positions arrive in. A position
names the outbox record decided (``topic:partition:offset``), the deadline alert raised
(``deadline:...``) or the aggregate quarantined (``quarantine:...``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, MutableSet

from jointbus.schemas.records import parse_position


class OffsetRuns:
    """A set of offsets kept as sorted, disjoint runs ``[start, end)``: a partition's
    decided offsets are nearly contiguous, so memory grows with the gaps, not the log."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = bisect_right(self.starts, offset) - 1
        return i >= 0 and offset < self.ends[i]

    def add(self, offset: int) -> None:
        i = bisect_right(self.starts, offset) - 1
        if i >= 0 and offset < self.ends[i]:
            return
        joins_left = i >= 0 and self.ends[i] == offset
        joins_right = i + 1 < len(self.starts) and self.starts[i + 1] == offset + 1
        if joins_left and joins_right:
            self.ends[i] = self.ends[i + 1]
            del self.starts[i + 1], self.ends[i + 1]
        elif joins_left:
            self.ends[i] = offset + 1
        elif joins_right:
            self.starts[i + 1] = offset
        else:
            self.starts.insert(i + 1, offset)
            self.ends.insert(i + 1, offset + 1)

    def __len__(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))

    def __iter__(self) -> Iterator[int]:
        for start, end in zip(self.starts, self.ends, strict=True):
            yield from range(start, end)


class PositionsInMemory(MutableSet[str]):
    """Positions logged so far: outbox offsets as runs per partition, the rest as strings."""

    def __init__(self) -> None:
        self.streams: dict[str, OffsetRuns] = {}
        self.others: set[str] = set()

    def __contains__(self, position: object) -> bool:
        where = parse_position(position) if isinstance(position, str) else None
        if where is None:
            return position in self.others
        runs = self.streams.get(where.stream)
        return runs is not None and where.offset in runs

    def add(self, position: str) -> None:
        where = parse_position(position)
        if where is None:
            self.others.add(position)
        else:
            self.streams.setdefault(where.stream, OffsetRuns()).add(where.offset)

    def discard(self, position: str) -> None:
        raise NotImplementedError("positions are never forgotten")

    def __iter__(self) -> Iterator[str]:
        for stream, runs in self.streams.items():
            yield from (f"{stream}:{offset}" for offset in runs)
        yield from self.others

    def __len__(self) -> int:
        return sum(len(r) for r in self.streams.values()) + len(self.others)


class LeafRule:
    """Decides, record by record in topic order, whether a record is a new leaf.

    ``seen`` holds the positions logged so far: compact runs in memory by default, or a
    store on disk (the audit index keeps it in SQLite).
    """

    def __init__(self, seen: MutableSet[str] | None = None) -> None:
        self.seen: MutableSet[str] = seen if seen is not None else PositionsInMemory()

    def admit(self, key: bytes | None) -> bool:
        """True (and remembered) when the record with this Kafka key is a new leaf."""
        if key is None:
            return True
        position = key.decode("utf-8", errors="replace")
        if position in self.seen:
            return False
        self.seen.add(position)
        return True
