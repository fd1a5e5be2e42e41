"""Opening the project's SQLite files the one way they are all opened.

Every durable file (agent state, realtime history, webhook outbox and log, the ack-first turn
journal) is a WAL database in autocommit mode (transactions are explicit), waits up to 5 s for
a lock, and has its schema applied on open. ``synchronous`` says what a commit waits for:
``FULL`` where a reply depends on the write surviving a power cut (the output gate), ``NORMAL``
where surviving a process crash is enough.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_db(
    path: str | Path,
    schema: str,
    *,
    synchronous: str | None = "NORMAL",
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """A connection to ``path`` (its folder made if missing; ``:memory:`` works too)."""
    name = str(path)
    if name != ":memory:":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(name, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    if synchronous is not None:
        conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(schema)
    return conn
