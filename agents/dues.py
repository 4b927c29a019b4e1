"""The deadlines still to be met, ordered by when they fall due.

The deadline monitor asks, every tick, which deadlines have passed. Scanning every pending
aggregate costs a tick in proportion to how many are open (a province has many); a heap
ordered by due time answers with the ones that passed only. A deadline that moved (an
aggregate's next transition) or was met leaves a stale heap entry that is skipped when it
surfaces, so every update stays O(log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime


class Dues:
    """Subject → the moment its next deadline passes, with the earliest first."""

    def __init__(self) -> None:
        self._due: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, subject: object) -> bool:
        return subject in self._due

    def __getitem__(self, subject: str) -> datetime:
        return self._due[subject]

    def __iter__(self) -> Iterator[str]:
        return iter(self._due)

    def set(self, subject: str, due: datetime) -> None:
        """``subject``'s deadline is now ``due`` (replacing any earlier one)."""
        if self._due.get(subject) == due:
            return
        self._due[subject] = due
        heapq.heappush(self._heap, (due, subject))
        if len(self._heap) > 4 * len(self._due) + 64:  # mostly stale entries: rebuild
            self._heap = [(d, s) for s, d in self._due.items()]
            heapq.heapify(self._heap)

    def discard(self, subject: str) -> None:
        """``subject`` has no deadline to meet any more."""
        self._due.pop(subject, None)

    def passed(self, now: datetime) -> list[tuple[str, datetime]]:
        """Every (subject, due) whose deadline has passed by ``now``, earliest first; they
        stay until ``discard``ed (an alert that failed is tried again at the next tick)."""
        found: list[tuple[str, datetime]] = []
        keep: list[tuple[datetime, str]] = []
        while self._heap and self._heap[0][0] <= now:
            due, subject = heapq.heappop(self._heap)
            if self._due.get(subject) == due:  # current, not stale
                found.append((subject, due))
                keep.append((due, subject))
        for entry in keep:
            heapq.heappush(self._heap, entry)
        return found
