"""Which audit-topic records become leaves: the rule every party applies identically.

A record is a leaf unless it repeats a decision already logged. The router writes one
record per outbox position, in each partition's offset order, and after a crash it
writes the reprocessed positions again; so a record whose position is at or below the
highest offset already logged for its topic-partition is a repeat. Deadline alerts are
keyed by aggregate, kind and date, and repeat when that key was logged before.
Memory: one integer per topic-partition plus one key per deadline alert.
"""

from __future__ import annotations


class LeafRule:
    """Decides, record by record in topic order, whether a record is a new leaf."""

    def __init__(self, high: dict[str, int] | None = None, alerts: set[str] | None = None) -> None:
        self.high = dict(high or {})
        self.alerts = set(alerts or ())

    def admit(self, key: bytes | None) -> bool:
        """True (and remembered) when the record with this Kafka key is a new leaf."""
        if key is None:
            return True
        position = key.decode("utf-8", errors="replace")
        stream, _, offset = position.rpartition(":")
        if position.startswith("deadline:") or not offset.isdigit() or not stream:
            if position in self.alerts:
                return False
            self.alerts.add(position)
            return True
        value = int(offset)
        if value <= self.high.get(stream, -1):
            return False
        self.high[stream] = value
        return True
