"""The worker's durable record of webhook ids, so de-duplication outlives the process.

``Deduplicator`` (``intake.py``) holds the ids in memory and decides; this writes each id it
remembers to a SQLite table in the worker's database and hands the recent ones back to the next
process at start, so a webhook redelivered after a restart (or a SIGKILL) is known as one.

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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from travelagent.logsafe import esc
from travelagent.sqlite import open_db

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
        self._writes = 0
        self._closed = False

    def recent(self, *, now_s: float | None = None) -> dict[str, float]:
        """Ids received within the ttl, with their time; read once, at start."""
        cutoff = (time.time() if now_s is None else now_s) - self.ttl_s
        rows = self._conn.execute(
            "SELECT webhook_id, t_s FROM webhooks WHERE t_s >= ?", (cutoff,)
        ).fetchall()
        return {str(i): float(t) for i, t in rows}

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
