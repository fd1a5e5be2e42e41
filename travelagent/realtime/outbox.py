"""The durable outbox of outbound webhooks: what is owed to the worker survives a restart.

Each webhook the sender admits is written here (its id, event, trace and attempts so far) and
deleted once the worker took it; one given up on moves to ``dead_letters`` with its reason.
At start the sender reads what is still owed and delivers it, under the same ``webhook-id``,
so the worker's de-duplication still recognises a webhook it had already received.

Writes run in order on one dedicated thread, so the event loop never waits on SQLite, and
with ``synchronous=NORMAL``: in WAL mode a write survives the process being killed (the fsync
is left to checkpoints). A webhook admitted in the last instant before a kill can still be
lost with the machine; the client's publish was answered by then, and a client that resends
its message under the same id gets the stored reply (the worker keys turns by message id).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from travelagent.sqlite import open_db

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    webhook_id TEXT PRIMARY KEY,
    event      TEXT NOT NULL,                   -- JSON
    trace      TEXT,                            -- JSON, or NULL
    attempts   INTEGER NOT NULL DEFAULT 0,
    t_s        REAL NOT NULL                    -- when it was admitted
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    webhook_id TEXT PRIMARY KEY,
    event      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    t_s        REAL NOT NULL                    -- when it was given up on
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Owed:
    webhook_id: str
    event: dict[str, Any]
    trace: dict[str, Any] | None
    attempts: int


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = open_db(self.path, SCHEMA, check_same_thread=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-outbox")
        self._closed = False

    def owed(self) -> list[Owed]:
        """What earlier processes admitted and never finished, oldest first (read at start)."""
        rows = self._conn.execute(
            "SELECT webhook_id, event, trace, attempts FROM outbox ORDER BY t_s"
        ).fetchall()
        return [
            Owed(str(i), json.loads(e), json.loads(t) if t else None, int(a)) for i, e, t, a in rows
        ]

    def dead_letters(self) -> list[tuple[str, str, int]]:
        """(webhook id, reason, attempts) of every dead letter, oldest first."""
        rows = self._conn.execute(
            "SELECT webhook_id, reason, attempts FROM dead_letters ORDER BY t_s"
        ).fetchall()
        return [(str(i), str(r), int(a)) for i, r, a in rows]

    # Each of these returns at once; the write follows, in call order, on the outbox thread.
    def admitted(self, webhook_id: str, event: dict[str, Any], trace: Any) -> None:
        self._submit(
            "INSERT OR IGNORE INTO outbox (webhook_id, event, trace, attempts, t_s)"
            " VALUES (?, ?, ?, 0, ?)",
            (webhook_id, json.dumps(event), json.dumps(trace) if trace else None, time.time()),
        )

    def attempted(self, webhook_id: str, attempts: int) -> None:
        self._submit("UPDATE outbox SET attempts = ? WHERE webhook_id = ?", (attempts, webhook_id))

    def delivered(self, webhook_id: str) -> None:
        self._submit("DELETE FROM outbox WHERE webhook_id = ?", (webhook_id,))

    def dead(self, webhook_id: str, event: dict[str, Any], reason: str, attempts: int) -> None:
        self._submit(
            "INSERT OR REPLACE INTO dead_letters (webhook_id, event, reason, attempts, t_s)"
            " VALUES (?, ?, ?, ?, ?)",
            (webhook_id, json.dumps(event), reason, attempts, time.time()),
        )
        self.delivered(webhook_id)

    def _submit(self, sql: str, params: tuple[Any, ...]) -> None:
        if not self._closed:
            self._executor.submit(self._write, sql, params)

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error:
            log.exception("webhook outbox %s: write failed", self.path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._conn.close()
