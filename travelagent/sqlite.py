"""Opening the project's SQLite files the one way they are all opened.

Every durable file (agent state, realtime history, webhook outbox and log, the ack-first turn
journal) is a WAL database in autocommit mode (transactions are explicit), waits up to 5 s for
a lock, and has its schema applied on open. ``synchronous`` says what a commit waits for:
``FULL`` where a reply depends on the write surviving a power cut (the output gate), ``NORMAL``
where surviving a process crash is enough.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# Each connection's page cache, in KiB, when set (else SQLite's default, 2,000 KiB): a cache
# grows with its file up to this bound, so ``make soak`` lowers it to have the caches full
# within its warm-up, and its memory slope measures what else grows.
CACHE_KIB_ENV = "TRAVELAGENT_SQLITE_CACHE_KIB"


def _cache_pragma() -> str | None:
    raw = os.environ.get(CACHE_KIB_ENV, "").strip()
    if not raw:
        return None
    try:
        kib = int(raw)
    except ValueError:
        kib = 0
    if kib < 1:
        raise ValueError(f"${CACHE_KIB_ENV} must be a whole number of KiB >= 1, not {raw!r}")
    return f"PRAGMA cache_size=-{kib}"


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
    cache = _cache_pragma()
    conn = sqlite3.connect(name, isolation_level=None, check_same_thread=check_same_thread)
    if cache is not None:
        conn.execute(cache)
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
    cache = _cache_pragma()
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    if cache is not None:
        conn.execute(cache)
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=250")
    return conn
