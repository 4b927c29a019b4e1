"""Which audit-topic records become leaves: the rule every party applies identically.

A record is a leaf unless its position was logged before: the router writes a decision
again after a crash (the same bytes, or at least the same decision), and the first record
of each position is the one that counts, whatever order positions arrive in. A position
names the outbox record decided (``topic:partition:offset``), the deadline alert raised
(``deadline:...``) or the aggregate quarantined (``quarantine:...``).
"""

from __future__ import annotations

from collections.abc import MutableSet


class LeafRule:
    """Decides, record by record in topic order, whether a record is a new leaf.

    ``seen`` holds the positions logged so far: a set in memory, or a store on disk
    (the audit index keeps it in SQLite).
    """

    def __init__(self, seen: MutableSet[str] | None = None) -> None:
        self.seen: MutableSet[str] = seen if seen is not None else set()

    def admit(self, key: bytes | None) -> bool:
        """True (and remembered) when the record with this Kafka key is a new leaf."""
        if key is None:
            return True
        position = key.decode("utf-8", errors="replace")
        if position in self.seen:
            return False
        self.seen.add(position)
        return True
