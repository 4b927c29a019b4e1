"""Aggregate states for re-checking decisions, with bounded memory.

The most recently used states stay in a dict; older ones spill to a temporary SQLite
file. Verifying a log of any length therefore needs the same memory.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from jointbus.schemas.lifecycle import Aggregate, dump_aggregate, load_aggregate


class StateStore(MutableMapping[str, Aggregate]):
    """A map of aggregate states that never holds more than ``hot`` in memory."""

    def __init__(self, hot: int = 2048) -> None:
        self.hot = hot
        self._recent: OrderedDict[str, Aggregate] = OrderedDict()
        self._dir = tempfile.TemporaryDirectory(prefix="jointbus-audit-state-")
        self._db = sqlite3.connect(Path(self._dir.name) / "states.sqlite")
        self._db.execute("CREATE TABLE states (subject TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _load(self, subject: str) -> Aggregate | None:
        state = self._recent.get(subject)
        if state is not None:
            self._recent.move_to_end(subject)
            return state
        row = self._db.execute("SELECT state FROM states WHERE subject = ?", (subject,)).fetchone()
        if row is None:
            return None
        loaded = load_aggregate(json.loads(row[0]))
        self.put(subject, loaded)
        return loaded

    def put(self, subject: str, state: Aggregate) -> None:
        self._recent[subject] = state
        self._recent.move_to_end(subject)
        if len(self._recent) > self.hot:
            old_subject, old_state = self._recent.popitem(last=False)
            self._db.execute(
                "INSERT OR REPLACE INTO states VALUES (?, ?)",
                (old_subject, json.dumps(dump_aggregate(old_state))),
            )

    def __getitem__(self, subject: str) -> Aggregate:
        state = self._load(subject)
        if state is None:
            raise KeyError(subject)
        return state

    def __setitem__(self, subject: str, state: Aggregate) -> None:
        self.put(subject, state)

    def __delitem__(self, subject: str) -> None:
        self._recent.pop(subject, None)
        self._db.execute("DELETE FROM states WHERE subject = ?", (subject,))

    def __iter__(self) -> Iterator[str]:
        spilled = [str(r[0]) for r in self._db.execute("SELECT subject FROM states")]
        return iter(dict.fromkeys([*self._recent, *spilled]))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
