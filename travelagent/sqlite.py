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


def open_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing WAL database ``path``, usable from any thread
    (one at a time): for point reads beside the connection that writes. A WAL reader waits
    for no writer; the short busy timeout covers only a log being recovered."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=250")
    return conn
