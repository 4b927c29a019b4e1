"""The local SQLite index of the audit log: what proofs need, derived from the topic.

Stores every complete subtree hash (``nodes``: about two rows per leaf), which record each
leaf is (``entries``), the leaf rule's memory, and the checkpoints signed. Delete the file
and ``AuditLog`` rebuilds it from ``jointbus.audit`` to the same root.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, MutableSet
from pathlib import Path

from jointbus.audit.errors import AuditError
from jointbus.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
)
from jointbus.schemas.leaves import LeafRule

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (level INTEGER, idx INTEGER, hash BLOB, PRIMARY KEY (level, idx))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, offset INTEGER NOT NULL, event_id TEXT);
CREATE INDEX IF NOT EXISTS entries_event ON entries (event_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (position TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class PositionSet(MutableSet[str]):
    """The positions logged so far, in the index's SQLite file (the leaf rule's memory)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __contains__(self, position: object) -> bool:
        row = self.db.execute("SELECT 1 FROM positions WHERE position = ?", (position,)).fetchone()
        return row is not None

    def add(self, position: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO positions VALUES (?)", (position,))

    def discard(self, position: str) -> None:
        self.db.execute("DELETE FROM positions WHERE position = ?", (position,))

    def __iter__(self) -> Iterator[str]:
        return (str(row[0]) for row in self.db.execute("SELECT position FROM positions"))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM positions").fetchone()[0])


class TreeIndex:
    """The Merkle tree of the audit log, on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA)
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        self.next_offset = int(meta.get("next_offset", 0))
        self.rule = LeafRule(PositionSet(self.db))
        self.frontier = Frontier()
        size = int(meta.get("size", 0))
        self._restore(size)

    def _restore(self, size: int) -> None:
        """Rebuild the in-memory right edge from stored complete subtrees."""
        stack, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                stack.append(self._node(level, start >> level))
                start += 1 << level
        self.frontier._stack, self.frontier.size = stack, size

    def _node(self, level: int, idx: int) -> bytes:
        row = self.db.execute("SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, idx)).fetchone()
        if row is None:
            raise AuditError(f"index {self.path} lacks node {level}/{idx}; delete it to rebuild")
        return bytes(row[0])

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, records: Iterable[tuple[int, bytes | None, bytes, str | None]]) -> int:
        """Append (offset, key, value, event id) records in topic order; returns leaves added."""
        nodes: list[tuple[int, int, bytes]] = []
        entries: list[tuple[int, int, str | None]] = []
        for offset, key, value, event_id in records:
            self.next_offset = offset + 1
            if not self.rule.admit(key):
                continue
            entries.append((self.frontier.size, offset, event_id))
            nodes += self.frontier.append(leaf_hash(value))
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)", nodes)
            self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", entries)
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [
                    ("next_offset", str(self.next_offset)),
                    ("size", str(self.frontier.size)),
                ],
            )
        return len(entries)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end): stored when complete and aligned, else composed."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of ``size`` leaves (default: all)."""
        if size is None or size == self.size:
            return self.frontier.root()
        if not 0 <= size <= self.size:
            raise AuditError(f"the log has {self.size} leaves, not {size}", reason="no_such_size")
        return self.subtree(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.subtree)

    def consistency(self, old: int, new: int) -> list[bytes]:
        if not 0 < old <= new <= self.size:
            raise AuditError(
                f"no consistency proof from {old} to {new} (log size {self.size})",
                reason="no_such_size",
            )
        return consistency_proof(old, new, self.subtree)

    def leaves_of(self, event_id: str) -> list[tuple[int, int]]:
        """(leaf index, topic offset) of every leaf about ``event_id``."""
        rows = self.db.execute(
            "SELECT idx, offset FROM entries WHERE event_id = ? ORDER BY idx", (event_id,)
        ).fetchall()
        return [(int(i), int(o)) for i, o in rows]

    def offset_of(self, index: int) -> int:
        row = self.db.execute("SELECT offset FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise AuditError(f"no leaf {index}", reason="no_such_leaf")
        return int(row[0])

    def add_checkpoint(self, size: int, root: bytes, note: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", (size, root, note))

    def checkpoints(self, limit: int = -1) -> list[tuple[int, str]]:
        """(size, signed note) of the ``limit`` most recent checkpoints (all: -1), newest first."""
        rows = self.db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT ?", (limit,))
        return [(int(size), str(note)) for size, note in rows.fetchall()]

    def latest_checkpoint(self) -> tuple[int, bytes, str] | None:
        row = self.db.execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def close(self) -> None:
        self.db.close()
