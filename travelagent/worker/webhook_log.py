"""The worker's durable record of webhook ids, so de-duplication outlives the process.

``Deduplicator`` (``intake.py``) holds the newest ids in memory and decides; this writes each id
it remembers to a SQLite table in the worker's database and answers for the ids memory has let
go, and for those an earlier process received, so a webhook redelivered after a restart (or a
SIGKILL), or long after memory dropped its id, is known as one.

Writes run on one dedicated thread (the event loop never waits on SQLite) with
``synchronous=NORMAL``: in WAL mode a commit then survives the process being killed, and the
fsync is left to checkpoints. The id is a second line of defence, not the first: a message's
turn is keyed by its message id in the agents' store, written with ``synchronous=FULL`` before
the reply leaves, so an id lost with the machine can at worst cost a replay of a stored reply,
never a second run of the agent.
"""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
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


class WebhookLog:
    def __init__(self, path: str | Path, *, ttl_s: float) -> None:
        self.path, self.ttl_s = str(path), ttl_s
        self._conn = open_db(self.path, SCHEMA, check_same_thread=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-log")
        self._reader: sqlite3.Connection | None = None
        self._writes = 0
        self._closed = False

    def newest(self) -> float | None:
        """When the newest id in the log was received (None: the log is empty); read at start,
        so the de-duplicator knows whether an earlier process left ids it may be asked for."""
        row = self._conn.execute("SELECT MAX(t_s) FROM webhooks").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def lookup(self, webhook_id: str) -> float | None:
        """When ``webhook_id`` was first received (None: not in the log). A point read by
        primary key on a read-only connection of the caller's (the event loop's): in WAL mode
        it waits for no writer. An id written moments ago may not be here yet; the
        de-duplicator still holds those in memory. A failed read answers None (the id is then
        started as new, and its message-id key in the agents' store still prevents a second
        run) and is logged."""
        try:
            if self._reader is None:
                self._reader = open_reader(self.path)
            row = self._reader.execute(
                "SELECT t_s FROM webhooks WHERE webhook_id = ?", (webhook_id,)
            ).fetchone()
        except sqlite3.Error:
            log.exception("webhook log %s: reading %s failed", self.path, esc(webhook_id))
            return None
        return None if row is None else float(row[0])

    def record(self, webhook_id: str, t_s: float) -> None:
        """Write ``webhook_id`` in the background (the caller never waits)."""
        if not self._closed:
            self._executor.submit(self._write, webhook_id, t_s)

    def _write(self, webhook_id: str, t_s: float) -> None:
        try:
            self._conn.execute(
                "INSERT OR IGNORE INTO webhooks (webhook_id, t_s) VALUES (?, ?)", (webhook_id, t_s)
            )
            self._writes += 1
            if self._writes % PRUNE_EVERY == 0:
                self._conn.execute("DELETE FROM webhooks WHERE t_s < ?", (t_s - self.ttl_s,))
        except sqlite3.Error:
            log.exception("webhook log %s: writing %s failed", self.path, esc(webhook_id))

    def close(self) -> None:
        """Finish the writes under way and close."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._conn.close()
        if self._reader is not None:
            self._reader.close()
