"""The agents' SQLite store: one database file, WAL mode, one thread owning the connection.

Why a thread: a durable commit ends in an fsync, which takes from microseconds (tmpfs) to tens
of milliseconds (a busy disk). Run on the event loop it would stall every other agent's tokens
and the worker's sockets, and that stall would show up as network latency in the measurements.
So every statement runs on one dedicated thread (``ThreadPoolExecutor(max_workers=1)``): SQLite
allows one writer at a time anyway, the thread serialises work without locks, and the event
loop only pays a thread hand-off (tens of microseconds).

Durability: WAL with ``synchronous=FULL`` (the default here) fsyncs the log on every commit, so
a transaction that ``commit`` has returned from survives a crash of the process and of the
machine. ``synchronous="NORMAL"`` survives a process crash only; it is offered to measure what
the fsync costs. See docs/agent.md for the schema.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from travelagent.agent.state import MAX_RECENT_MESSAGES, TripState
from travelagent.agent.turns import DEFAULT_RETENTION_S, Replies, StoredReply, TurnRecord, TurnState
from travelagent.sqlite import open_db
from travelagent.wire.trace import now_ns

T = TypeVar("T")

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name          TEXT PRIMARY KEY,
    destination   TEXT,
    start_date    TEXT,
    end_date      TEXT,
    budget        REAL,
    preferences   TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    itinerary     TEXT NOT NULL DEFAULT '[]',   -- JSON list of {kind, name, city?}
    message_count INTEGER NOT NULL DEFAULT 0,   -- messages ever committed (next seq)
    updated_ns    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    agent   TEXT NOT NULL,
    seq     INTEGER NOT NULL,                   -- 0, 1, 2, ... per agent, in commit order
    role    TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    t_ns    INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS turns (
    agent    TEXT NOT NULL,
    msg_id   TEXT NOT NULL,                     -- the message id: a turn's idempotency key
    state    TEXT NOT NULL CHECK (state IN ('started', 'done')),
    user_seq INTEGER NOT NULL,                  -- the user's message in messages
    message  TEXT NOT NULL,                     -- the user's text
    reply    TEXT,                              -- the assistant's, once done
    t_ns     INTEGER NOT NULL,                  -- when the turn started
    PRIMARY KEY (agent, msg_id)
) WITHOUT ROWID;
"""
# An agent's expired turn keys are deleted by every PRUNE_EVERY-th commit (in its transaction,
# through the primary key's agent prefix: no index on time to keep up on every turn), so a
# commit usually pays nothing for them.
PRUNE_EVERY = 128
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "OFF")


class StoreError(RuntimeError):
    """The store failed; ``str(err)`` says which operation and why."""


@dataclass(frozen=True)
class TurnStart:
    """Write with the user's message: the turn ``msg_id`` is started."""

    msg_id: str
    user_seq: int
    message: str


@dataclass(frozen=True)
class TurnDone:
    """Write with the reply: the turn ``msg_id`` is done and ``reply`` is its answer."""

    msg_id: str
    reply: str


TurnWrite = TurnStart | TurnDone


class AgentStore:
    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        max_recent: int = MAX_RECENT_MESSAGES,
        turn_retention_s: float = DEFAULT_RETENTION_S,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self.max_recent = max_recent
        self.turn_retention_s = turn_retention_s
        self._commits = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- runs on the store thread ------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = open_db(self.path, SCHEMA, synchronous=self.synchronous)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn = conn
        return self._conn

    def _load(self, name: str) -> TripState:
        conn = self._connection()
        row = conn.execute(
            "SELECT destination, start_date, end_date, budget, preferences, itinerary,"
            " message_count FROM agents WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return TripState()
        rows = conn.execute(
            "SELECT role, content FROM messages WHERE agent = ? ORDER BY seq DESC LIMIT ?",
            (name, self.max_recent),
        ).fetchall()
        return TripState(
            destination=row[0],
            start_date=row[1],
            end_date=row[2],
            budget=row[3],
            preferences=json.loads(row[4]),
            itinerary=json.loads(row[5]),
            recent_messages=[{"role": r, "content": c} for r, c in reversed(rows)],
            message_count=row[6],
        )

    def _commit(
        self,
        name: str,
        row: tuple[Any, ...],
        appended: list[tuple[int, str, str]],
        turn: TurnWrite | None,
    ) -> None:
        conn = self._connection()
        t_ns = now_ns()
        self._commits += 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO agents (name, destination, start_date, end_date, budget, preferences,"
                " itinerary, message_count, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET destination=excluded.destination,"
                " start_date=excluded.start_date, end_date=excluded.end_date,"
                " budget=excluded.budget, preferences=excluded.preferences,"
                " itinerary=excluded.itinerary, message_count=excluded.message_count,"
                " updated_ns=excluded.updated_ns",
                (name, *row, t_ns),
            )
            conn.executemany(
                "INSERT INTO messages (agent, seq, role, content, t_ns) VALUES (?, ?, ?, ?, ?)",
                [(name, seq, role, content, t_ns) for seq, role, content in appended],
            )
            # Keep the last max_recent messages: the store is bounded per agent.
            conn.execute(
                "DELETE FROM messages WHERE agent = ? AND seq < ?",
                (name, row[-1] - self.max_recent),
            )
            # The turn's key rides in the same transaction: no extra write, no extra fsync.
            if isinstance(turn, TurnStart):
                conn.execute(
                    "INSERT OR REPLACE INTO turns (agent, msg_id, state, user_seq, message, reply,"
                    " t_ns) VALUES (?, ?, 'started', ?, ?, NULL, ?)",
                    (name, turn.msg_id, turn.user_seq, turn.message, t_ns),
                )
            elif isinstance(turn, TurnDone):
                conn.execute(
                    "UPDATE turns SET state = 'done', reply = ? WHERE agent = ? AND msg_id = ?",
                    (turn.reply, name, turn.msg_id),
                )
            if self._commits % PRUNE_EVERY == 0:
                conn.execute(
                    "DELETE FROM turns WHERE agent = ? AND t_ns < ?",
                    (name, t_ns - int(self.turn_retention_s * 1e9)),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _turns(self, name: str) -> dict[str, TurnRecord]:
        cutoff = now_ns() - int(self.turn_retention_s * 1e9)
        rows = (
            self._connection()
            .execute(
                "SELECT msg_id, state, user_seq, t_ns FROM turns WHERE agent = ? AND t_ns >= ?",
                (name, cutoff),
            )
            .fetchall()
        )
        return {str(m): TurnRecord(s, int(q), int(t)) for m, s, q, t in rows}

    def _turn_texts(self, name: str, msg_id: str) -> tuple[str, str | None] | None:
        row = (
            self._connection()
            .execute(
                "SELECT message, reply FROM turns WHERE agent = ? AND msg_id = ?", (name, msg_id)
            )
            .fetchone()
        )
        return None if row is None else (str(row[0]), row[1])

    def _messages(self, name: str) -> list[tuple[int, str, str]]:
        rows = (
            self._connection()
            .execute(
                "SELECT seq, role, content FROM messages WHERE agent = ? ORDER BY seq", (name,)
            )
            .fetchall()
        )
        return [(int(s), str(r), str(c)) for s, r, c in rows]

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the event loop's side ----------------------------------------------------------------

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as err:
            raise StoreError(f"store {self.path}: {what} failed: {err}") from err

    async def load(self, name: str) -> TripState:
        """The agent's committed state (a fresh TripState if it has none)."""
        return await self._run("load", self._load, name)

    async def turns(self, name: str) -> dict[str, TurnRecord]:
        """The agent's turn keys younger than the retention, by message id."""
        return await self._run("load turns", self._turns, name)

    async def turn_texts(self, name: str, msg_id: str) -> tuple[str, str | None] | None:
        """The stored (user message, reply or None) of one turn, or None if it has no key."""
        return await self._run("read turn", self._turn_texts, name, msg_id)

    async def commit(
        self,
        name: str,
        state: TripState,
        appended: list[tuple[int, str, str]],
        *,
        turn: TurnWrite | None = None,
    ) -> None:
        """Durably write ``state``, the new ``(seq, role, content)`` messages and the turn's
        key (``turn``), atomically."""
        # Serialise here, on the loop, so the store thread never reads a state being mutated.
        row = (
            state.destination,
            state.start_date,
            state.end_date,
            state.budget,
            json.dumps(state.preferences),
            json.dumps(state.itinerary),
            state.message_count,
        )
        await self._run("commit", self._commit, name, row, list(appended), turn)

    async def messages(self, name: str) -> list[tuple[int, str, str]]:
        """Stored ``(seq, role, content)`` of an agent, oldest first."""
        return await self._run("read messages", self._messages, name)

    async def close(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._closed = True
        self._executor.shutdown(wait=True)

    async def replies_after(
        self, name: str, after: str | None, ids: Sequence[str] = ()
    ) -> Replies | None:
        """The committed replies of ``name`` a reconnecting client missed: every done turn
        whose message came after ``after``'s (None: none by position), and any of ``ids``
        that is done, each once, in commit order (the user messages' ``seq``); with the state
        of each of ``ids``. None if ``after`` names no turn this agent keeps."""

        def read() -> Replies | None:
            conn = self._connection()
            cutoff = now_ns() - int(self.turn_retention_s * 1e9)
            start: int | None = None
            if after is not None:
                row = conn.execute(
                    "SELECT user_seq FROM turns WHERE agent = ? AND msg_id = ? AND t_ns >= ?",
                    (name, after, cutoff),
                ).fetchone()
                if row is None:
                    return None
                start = int(row[0])
            found: dict[str, StoredReply] = {}
            if start is not None:
                for m, s, q, r in conn.execute(
                    "SELECT msg_id, state, user_seq, reply FROM turns WHERE agent = ?"
                    " AND user_seq > ? AND state = 'done' AND t_ns >= ?",
                    (name, start, cutoff),
                ):
                    found[str(m)] = StoredReply(str(m), s, int(q), r)
            states: dict[str, TurnState] = {}
            for msg_id in dict.fromkeys(ids):
                row = conn.execute(
                    "SELECT state, user_seq, reply FROM turns WHERE agent = ? AND msg_id = ?"
                    " AND t_ns >= ?",
                    (name, msg_id, cutoff),
                ).fetchone()
                states[msg_id] = "new" if row is None else row[0]
                if row is not None and row[0] == "done":
                    found.setdefault(msg_id, StoredReply(msg_id, "done", int(row[1]), row[2]))
            return Replies(sorted(found.values(), key=lambda r: r.user_seq), states)

        return await self._run("read replies", read)
