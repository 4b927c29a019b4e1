# ruff: noqa: S608 - the only text formatted into queries is the constant column lists below
"""The gateway's durable memory (SQLite, private to the agency): the inbox as it was read,
with a cursor that survives restarts; what internal systems sent, with their idempotency
keys and the router's decisions; receipts from the recipients; small settings.

A delivery is written here before its Kafka offset is committed, and an event is written
here (as its exact signed bytes) before it is sent, so a crash at any point loses nothing
and a retry re-sends the same event id, which the bus refuses to deliver twice.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointbus.schemas.ids import format_time, utcnow
from jointbus.streams.keystore import private_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
  cursor INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT UNIQUE NOT NULL,
  type TEXT NOT NULL, family TEXT NOT NULL, sender TEXT NOT NULL, subject TEXT NOT NULL,
  time TEXT NOT NULL, envelope TEXT NOT NULL, payload TEXT NOT NULL, stored_at TEXT NOT NULL,
  acked_at TEXT, acked_by TEXT, receipt_id TEXT
);
CREATE INDEX IF NOT EXISTS inbox_subject ON inbox(subject);
CREATE TABLE IF NOT EXISTS sent (
  event_id TEXT PRIMARY KEY,
  caller TEXT NOT NULL, idem_key TEXT, request_hash TEXT,
  type TEXT NOT NULL, subject TEXT NOT NULL, time TEXT NOT NULL, recipients TEXT NOT NULL,
  wire BLOB NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,
  decision TEXT, reason TEXT, detail TEXT, delivered_to TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sent_idem ON sent(caller, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sent_subject ON sent(subject);
CREATE TABLE IF NOT EXISTS receipts (
  receipt_id TEXT PRIMARY KEY, event_id TEXT NOT NULL, recipient TEXT NOT NULL,
  status TEXT NOT NULL, reason TEXT, time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_event ON receipts(event_id);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class InboxRow:
    """One delivery as stored: its place in this gateway's inbox order and what was read."""

    cursor: int
    event_id: str
    type: str
    family: str
    sender: str
    subject: str
    time: str
    envelope: dict[str, Any]
    payload: dict[str, Any]
    acked_at: str | None
    acked_by: str | None
    receipt_id: str | None


@dataclass(frozen=True)
class SentRow:
    """One event an internal system published through this gateway, and what became of it."""

    event_id: str
    caller: str
    idem_key: str | None
    request_hash: str | None
    type: str
    subject: str
    time: str
    recipients: list[str]
    wire: bytes
    state: str  # pending (written, not yet acknowledged by the broker) | published
    decision: str | None  # accepted | rejected | None (not yet decided)
    reason: str | None
    detail: str | None
    delivered_to: list[str]


class GatewayStore:
    """The SQLite file of one agency's gateway (created private: it holds opened payloads).

    Writes are group-committed: one thread commits what is queued in one transaction, with
    one fsync (``synchronous=FULL``: a stored delivery survives a power cut), while the
    writes that arrive meanwhile queue for the next. The event loop never waits on the disk
    (under load an fsync took 2–6 ms here); it reads on its own connection, which WAL never
    blocks behind a commit.
    """

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self.path = path
        # commits run in the store's one thread on their own connection; reads run on the
        # event loop on another (WAL: a reader never waits for a commit's fsync)
        self._writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        path.chmod(0o600)
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=FULL")
        self._writer.executescript(SCHEMA)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._queue: list[tuple[str, tuple[Any, ...], asyncio.Future[int | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="gateway-store")

    def close(self) -> None:
        self._thread.shutdown()
        self._db.close()
        self._writer.close()

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int | None:
        """Queue one statement; once committed, the row id it wrote (None: it changed nothing)."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append((sql, params, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        """Commit what is queued, in the store's thread; what queues meanwhile goes next."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            statements = [(sql, params) for sql, params, _ in batch]
            try:
                results = await loop.run_in_executor(self._thread, self._commit, statements)
            except sqlite3.Error as exc:  # the transaction failed as a whole
                results = [exc] * len(batch)
            for (_, _, done), result in zip(batch, results, strict=True):
                if done.cancelled():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def _commit(self, batch: list[tuple[str, tuple[Any, ...]]]) -> list[int | Exception | None]:
        """Run ``batch`` in one transaction; each statement's result."""
        results: list[int | Exception | None] = []
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in batch:
                try:
                    cur = self._writer.execute(sql, params)
                    results.append(cur.lastrowid if cur.rowcount else None)
                except sqlite3.Error as exc:  # this statement only (e.g. a unique key taken)
                    results.append(exc)
            self._writer.execute("COMMIT")
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        return results

    # ------------------------------------------------------------------ inbox
    async def add_delivery(
        self, *, event_id: str, type_: str, family: str, sender: str, subject: str, time: str,
        envelope: dict[str, Any], payload: dict[str, Any],
    ) -> int | None:  # fmt: skip
        """Store a delivery; its cursor, or None when this event id is stored already."""
        return await self._write(
            "INSERT OR IGNORE INTO inbox (event_id, type, family, sender, subject, time, envelope,"
            " payload, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id, type_, family, sender, subject, time,
                json.dumps(envelope, ensure_ascii=False), json.dumps(payload, ensure_ascii=False),
                format_time(utcnow()),
            ),
        )  # fmt: skip

    def inbox_after(self, after: int, limit: int) -> list[InboxRow]:
        """Deliveries after ``after`` in inbox order, at most ``limit``."""
        rows = self._db.execute(
            f"SELECT {_INBOX} FROM inbox WHERE cursor > ? ORDER BY cursor LIMIT ?",
            (after, limit),
        ).fetchall()
        return [_inbox_row(r) for r in rows]

    def inbox_item(self, event_id: str) -> InboxRow | None:
        row = self._db.execute(f"SELECT {_INBOX} FROM inbox WHERE event_id = ?", (event_id,)).fetchone()
        return _inbox_row(row) if row else None

    def last_cursor(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(cursor), 0) FROM inbox").fetchone()
        return int(row[0])

    async def mark_acked(self, event_id: str, caller: str, receipt_id: str | None) -> None:
        await self._write(
            "UPDATE inbox SET acked_at = ?, acked_by = ?, receipt_id = ?"
            " WHERE event_id = ? AND acked_at IS NULL",
            (format_time(utcnow()), caller, receipt_id, event_id),
        )

    # ------------------------------------------------------------------ sent
    async def reserve(
        self, *, event_id: str, caller: str, idem_key: str | None, request_hash: str | None, type_: str,
        subject: str, time: str, recipients: list[str], wire: bytes,
    ) -> None:  # fmt: skip
        """Write an event about to be sent (state ``pending``) before it is sent."""
        await self._write(
            "INSERT INTO sent (event_id, caller, idem_key, request_hash, type, subject, time, recipients,"
            " wire, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (
                event_id, caller, idem_key, request_hash, type_, subject, time, json.dumps(recipients),
                wire, format_time(utcnow()),
            ),
        )  # fmt: skip

    async def mark_published(self, event_id: str) -> None:
        await self._write("UPDATE sent SET state = 'published' WHERE event_id = ?", (event_id,))

    def by_idempotency_key(self, caller: str, key: str) -> SentRow | None:
        row = self._db.execute(
            f"SELECT {_SENT} FROM sent WHERE caller = ? AND idem_key = ?",
            (caller, key),
        ).fetchone()
        return _sent_row(row) if row else None

    def sent(self, event_id: str) -> SentRow | None:
        row = self._db.execute(f"SELECT {_SENT} FROM sent WHERE event_id = ?", (event_id,)).fetchone()
        return _sent_row(row) if row else None

    async def note_decision(
        self, event_id: str, *, accepted: bool, reason: str | None, detail: str, delivered_to: list[str]
    ) -> None:
        """The router's decision on one of this agency's events (from its signed notice). A
        ``duplicate`` refusal of a copy re-sent after a crash never replaces the decision on
        the first copy."""
        await self._write(
            "UPDATE sent SET decision = ?, reason = ?, detail = ?, delivered_to = ?"
            " WHERE event_id = ? AND (decision IS NULL OR ? IS NOT 'duplicate')",
            (
                "accepted" if accepted else "rejected",
                reason,
                detail,
                json.dumps(delivered_to),
                event_id,
                reason,
            ),
        )

    async def note_receipt(
        self, receipt_id: str, *, event_id: str, recipient: str, status: str, reason: str | None, time: str
    ) -> None:
        await self._write(
            "INSERT OR IGNORE INTO receipts VALUES (?, ?, ?, ?, ?, ?)",
            (receipt_id, event_id, recipient, status, reason, time),
        )

    def receipts(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT recipient, status, reason, time, receipt_id FROM receipts"
            " WHERE event_id = ? ORDER BY time",
            (event_id,),
        ).fetchall()
        return [
            {"recipient": r[0], "status": r[1], "reason": r[2], "time": r[3], "receipt_id": r[4]}
            for r in rows
        ]

    # ------------------------------------------------------------------ aggregates
    def subject_history(self, subject: str) -> tuple[list[SentRow], list[InboxRow]]:
        """What this agency sent on ``subject`` and what it received on it."""
        sent = self._db.execute(f"SELECT {_SENT} FROM sent WHERE subject = ?", (subject,)).fetchall()
        got = self._db.execute(
            f"SELECT {_INBOX} FROM inbox WHERE subject = ? ORDER BY cursor",
            (subject,),
        ).fetchall()
        return [_sent_row(r) for r in sent], [_inbox_row(r) for r in got]

    # ------------------------------------------------------------------ settings
    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    async def set_setting(self, key: str, value: str) -> None:
        await self._write("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))


_INBOX = (
    "cursor, event_id, type, family, sender, subject, time, envelope, payload, acked_at, acked_by, receipt_id"
)
_SENT = (
    "event_id, caller, idem_key, request_hash, type, subject, time, recipients, wire, state, decision,"
    " reason, detail, delivered_to"
)


def _inbox_row(r: tuple[Any, ...]) -> InboxRow:
    return InboxRow(
        cursor=r[0], event_id=r[1], type=r[2], family=r[3], sender=r[4], subject=r[5], time=r[6],
        envelope=json.loads(r[7]), payload=json.loads(r[8]), acked_at=r[9], acked_by=r[10], receipt_id=r[11],
    )  # fmt: skip


def _sent_row(r: tuple[Any, ...]) -> SentRow:
    return SentRow(
        event_id=r[0], caller=r[1], idem_key=r[2], request_hash=r[3], type=r[4], subject=r[5], time=r[6],
        recipients=json.loads(r[7]), wire=bytes(r[8]), state=r[9], decision=r[10], reason=r[11],
        detail=r[12], delivered_to=json.loads(r[13]) if r[13] else [],
    )  # fmt: skip
