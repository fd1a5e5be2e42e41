"""The worker's durable record of webhook ids, so de-duplication outlives the process.

``Deduplicator`` (``intake.py``) holds the newest ids in memory and decides; this writes each id
it remembers to a SQLite file of its own beside the worker's database (``log_path``) and answers
for the ids memory has let go, and for those an earlier process received, so a webhook
redelivered after a restart (or a SIGKILL), or long after memory dropped its id, is known as one.

Writes run on one dedicated thread (the event loop never waits on SQLite) with
``synchronous=NORMAL``: in WAL mode a commit then survives the process being killed, and the
fsync is left to checkpoints. The thread writes the ids of each ``gather_s`` (10 ms) in one
transaction, so at most one commit per ``gather_s``, not one per webhook, and an id reaches the
log at most ``gather_s`` later than it would have; while ids keep coming it polls the queue and
is never woken by the event loop (each wake-up of a thread costs the loop a hand-over of the
GIL). Its own
file, not a table in the agents' database: SQLite lets one writer at a time into a file, and
the agents' group commit (which holds the lock through its fsync) and the log would otherwise
wait for each other in SQLite's busy handler, which sleeps a millisecond and more per try.

The id is a second line of defence, not the first: a message's turn is keyed by its message id
in the agents' store, written with ``synchronous=FULL`` before the reply leaves, so an id lost
with the machine can at worst cost a replay of a stored reply, never a second run of the agent.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

from travelagent.logsafe import esc
from travelagent.sqlite import open_db, open_reader

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id TEXT PRIMARY KEY,
    t_s        REAL NOT NULL                    -- when it was first received (wall clock)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhooks_by_time ON webhooks (t_s);
"""
PRUNE_EVERY = 256  # writes between deletions of expired ids
GATHER_S = 0.01  # how long a woken writer waits for more ids before it writes


def log_path(db_path: str | Path) -> Path:
    """The log's file beside the worker's database (``w.sqlite3`` → ``w.webhooks.sqlite3``)."""
    db = Path(db_path)
    return db.with_name(f"{db.stem}.webhooks{db.suffix}")


class WebhookLog:
    def __init__(self, path: str | Path, *, ttl_s: float, gather_s: float = GATHER_S) -> None:
        self.path, self.ttl_s, self.gather_s = str(path), ttl_s, gather_s
        self._conn = open_db(self.path, SCHEMA, check_same_thread=False)
        self._queue: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="webhook-log", daemon=True)
        self._thread.start()
        self._reader: sqlite3.Connection | None = None
        self._writes = 0
        self.batches = 0  # transactions written (for tests and the bench)
        self._closed = False

    def newest(self) -> float | None:
        """When the newest id in the log was received (None: the log is empty); read at start,
        so the de-duplicator knows whether an earlier process left ids it may be asked for."""
        row = self._reader_conn().execute("SELECT MAX(t_s) FROM webhooks").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _reader_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = open_reader(self.path)
        return self._reader

    def lookup(self, webhook_id: str) -> float | None:
        """When ``webhook_id`` was first received (None: not in the log). A point read by
        primary key on a read-only connection of the caller's (the event loop's): in WAL mode
        it waits for no writer. An id written moments ago may not be here yet; the
        de-duplicator still holds those in memory. A failed read answers None (the id is then
        started as new, and its message-id key in the agents' store still prevents a second
        run) and is logged."""
        try:
            row = (
                self._reader_conn()
                .execute("SELECT t_s FROM webhooks WHERE webhook_id = ?", (webhook_id,))
                .fetchone()
            )
        except sqlite3.Error:
            log.exception("webhook log %s: reading %s failed", self.path, esc(webhook_id))
            return None
        return None if row is None else float(row[0])

    def record(self, webhook_id: str, t_s: float) -> None:
        """Write ``webhook_id`` in the background (the caller never waits)."""
        if not self._closed:
            self._queue.put((webhook_id, t_s))

    def _serve(self) -> None:
        """The writer thread: the ids queued within ``gather_s`` go into one transaction. While
        ids keep coming it polls the queue every ``gather_s`` and never waits on it, so the
        event loop's ``put`` wakes nobody (a wake-up costs the loop a hand-over of the GIL,
        often its core); it waits, and is woken, only once it found the queue empty."""
        while True:
            item = self._queue.get()
            while item is not None:
                rows = [item]
                time.sleep(self.gather_s)
                stop = self._take_queued(rows)
                self._write(rows)
                if stop:
                    return
                try:
                    item = self._queue.get_nowait()  # more came meanwhile: poll again
                except queue.Empty:
                    break  # found empty: wait for the next id
            else:
                return  # None: close() asked for the end

    def _take_queued(self, rows: list[tuple[str, float]]) -> bool:
        """Move what is queued to ``rows``; True if the end (None) was among it."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            rows.append(item)

    def _write(self, rows: list[tuple[str, float]]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO webhooks (webhook_id, t_s) VALUES (?, ?)", rows
                )
                before, self._writes = self._writes, self._writes + len(rows)
                if before // PRUNE_EVERY != self._writes // PRUNE_EVERY:
                    newest = max(t_s for _, t_s in rows)
                    conn.execute("DELETE FROM webhooks WHERE t_s < ?", (newest - self.ttl_s,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.batches += 1
        except sqlite3.Error:
            ids = ", ".join(esc(i) for i, _ in rows[:3]) + (", ..." if len(rows) > 3 else "")
            log.exception("webhook log %s: writing %d id(s) (%s) failed", self.path, len(rows), ids)

    def close(self) -> None:
        """Finish the writes under way and close."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._conn.close()
        if self._reader is not None:
            self._reader.close()
