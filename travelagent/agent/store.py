"""The agents' SQLite store: one database file, WAL mode, one writer thread owning the connection.

Why a thread: a durable commit ends in an fsync, which takes from microseconds (tmpfs) to tens
of milliseconds (a busy disk). Run on the event loop it would stall every other agent's tokens
and the worker's sockets, and that stall would show up as network latency in the measurements.
So every statement runs on one dedicated thread that owns the connection: SQLite allows one
writer at a time anyway, and the thread serialises work without locks.

Group commit: the thread takes every job queued while it was busy (usually the fsync of the
previous group) and runs the commits among them in ONE transaction, each inside its own
savepoint, then ends it with one ``COMMIT`` and so one fsync. Concurrent turns of different
agents thus share an fsync. A caller's future is resolved only after the ``COMMIT`` that holds
its own writes has returned, so the output gate holds as before: nothing waits on a commit that
is not durable yet. A commit whose statements fail is rolled back to its savepoint alone (the
others of its group commit); if the ``COMMIT`` itself fails, every commit of the group fails.
A commit may name one it comes ``after`` (``begin_commit``): if that one failed, it fails too
without being written, so a turn's reply is never stored without its question. Reads run
between groups, in queue order, and see only committed data.

Durability: WAL with ``synchronous=FULL`` (the default here) fsyncs the log on every commit, so
a transaction that ``commit`` has returned from survives a crash of the process and of the
machine. ``synchronous="NORMAL"`` survives a process crash only; it is offered to measure what
the fsync costs. See docs/agent.md for the schema.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from travelagent.agent.state import MAX_RECENT_MESSAGES, TripState
from travelagent.agent.turns import DEFAULT_RETENTION_S, Replies, StoredReply, TurnRecord, TurnState
from travelagent.sqlite import open_db, open_reader
from travelagent.wire import jsoncodec
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


@dataclass(frozen=True)
class TurnWhole:
    """Write with the user's message and the reply together (an unstreamed turn, whose question
    nobody needed durable before the reply): the turn ``msg_id`` is done, in one write."""

    msg_id: str
    user_seq: int
    message: str
    reply: str


TurnWrite = TurnStart | TurnDone | TurnWhole


@dataclass(frozen=True)
class TurnKeys:
    """An agent's turn keys as loaded: by message id, oldest first; ``complete`` is False when
    older keys within the retention were left in the store."""

    records: dict[str, TurnRecord]
    complete: bool


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
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # point reads on the caller's thread
        self._closed = False
        self.groups = 0  # COMMITs run (each one fsync under FULL), for tests and the bench

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

    def _write(
        self,
        name: str,
        row: tuple[Any, ...],
        appended: list[tuple[int, str, str]],
        turn: TurnWrite | None,
    ) -> None:
        """One agent's commit, inside the group's open transaction."""
        conn = self._connection()
        t_ns = now_ns()
        self._commits += 1
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
        elif isinstance(turn, TurnWhole):
            conn.execute(
                "INSERT OR REPLACE INTO turns (agent, msg_id, state, user_seq, message, reply,"
                " t_ns) VALUES (?, ?, 'done', ?, ?, ?, ?)",
                (name, turn.msg_id, turn.user_seq, turn.message, turn.reply, t_ns),
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

    def _turns(self, name: str, limit: int | None) -> TurnKeys:
        cutoff = now_ns() - int(self.turn_retention_s * 1e9)
        sql = (
            "SELECT msg_id, state, user_seq, t_ns FROM turns WHERE agent = ? AND t_ns >= ?"
            " ORDER BY t_ns DESC, user_seq DESC"
        )
        args: tuple[Any, ...] = (name, cutoff)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit + 1,)
        rows = self._connection().execute(sql, args).fetchall()
        complete = limit is None or len(rows) <= limit
        newest = rows if limit is None else rows[:limit]
        records = {str(m): TurnRecord(s, int(q), int(t)) for m, s, q, t in reversed(newest)}
        return TurnKeys(records, complete)

    def _turn_record(self, conn: sqlite3.Connection, name: str, msg_id: str) -> TurnRecord | None:
        cutoff = now_ns() - int(self.turn_retention_s * 1e9)
        row = conn.execute(
            "SELECT state, user_seq, t_ns FROM turns WHERE agent = ? AND msg_id = ? AND t_ns >= ?",
            (name, msg_id, cutoff),
        ).fetchone()
        return None if row is None else TurnRecord(row[0], int(row[1]), int(row[2]))

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

    def _serve(self) -> None:
        """The writer thread: run jobs as they come, the commits among them in groups."""
        while True:
            first = self._jobs.get()
            if first is None:
                self._close()
                return
            batch = [first]
            stop = False
            while True:  # everything queued meanwhile joins this round
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            group: list[_Job] = []
            for job in batch:
                if job.write:
                    group.append(job)
                    continue
                self._commit_group(group)  # a read sees what was queued before it
                group = []
                try:
                    job.result = job.fn(*job.args)
                except Exception as err:  # reported to its caller; the thread goes on
                    job.error = err
                _settle([job])
            self._commit_group(group)
            if stop:
                self._close()
                return

    def _commit_group(self, group: list[_Job]) -> None:
        if not group:
            return
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            for job in group:
                job.error = err
            _settle(group)
            return
        written = []
        for job in group:
            if job.after is not None and job.after.error is not None:
                job.error = sqlite3.OperationalError(
                    f"not written: the commit it follows failed ({job.after.error})"
                )
                continue
            try:
                conn.execute("SAVEPOINT one")
                job.fn(*job.args)
                conn.execute("RELEASE one")
                written.append(job)
            except Exception as err:  # this commit alone is rolled back
                job.error = err
                conn.execute("ROLLBACK TO one")
                conn.execute("RELEASE one")
        try:
            conn.execute("COMMIT")
            self.groups += 1
        except sqlite3.Error as err:
            conn.execute("ROLLBACK")
            for job in written:
                job.error = err
        _settle(group)

    # -- the event loop's side ----------------------------------------------------------------

    def _submit(
        self, what: str, fn: Callable[..., Any], args: tuple[Any, ...], *, write: bool,
        after: PendingCommit | None = None,
    ) -> _Job:  # fmt: skip
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name=f"agent-store-{id(self):x}", daemon=True
            )
            self._thread.start()
        job = _Job(what, fn, args, write, asyncio.get_running_loop(), self.path)
        job.after = after.job if after is not None else None
        self._jobs.put(job)
        return job

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (a read) on the store thread, in queue order."""
        job = self._submit(what, fn, args, write=False)
        await job.future
        return job.result

    async def load(self, name: str) -> TripState:
        """The agent's committed state (a fresh TripState if it has none)."""
        return await self._run("load", self._load, name)

    async def turns(self, name: str, *, limit: int | None = None) -> TurnKeys:
        """The agent's turn keys younger than the retention, by message id, oldest first: all
        of them, or the newest ``limit`` (``complete`` then says whether that was all)."""
        return await self._run("load turns", self._turns, name, limit)

    async def turn_record(self, name: str, msg_id: str) -> TurnRecord | None:
        """One committed turn key (None: none younger than the retention).

        A point read by primary key on a read-only connection of the caller's own, not a job
        for the writer thread: it never waits behind a group's fsync, and in WAL mode it never
        waits for the writer either (it sees what was committed before it began). For a
        ``:memory:`` database, which another connection cannot see, it goes through the
        writer thread."""
        if self.path == ":memory:":
            return await self._run("read turn key", self._turn_record_on_writer, name, msg_id)
        try:
            if self._reader is None:
                self._reader = open_reader(self.path)
            return self._turn_record(self._reader, name, msg_id)
        except sqlite3.Error as err:
            raise StoreError(f"read turn key {msg_id!r} of {name!r}: {err}") from err

    def _turn_record_on_writer(self, name: str, msg_id: str) -> TurnRecord | None:
        return self._turn_record(self._connection(), name, msg_id)

    async def turn_texts(self, name: str, msg_id: str) -> tuple[str, str | None] | None:
        """The stored (user message, reply or None) of one turn, or None if it has no key."""
        return await self._run("read turn", self._turn_texts, name, msg_id)

    def begin_commit(
        self,
        name: str,
        state: TripState,
        appended: list[tuple[int, str, str]],
        *,
        turn: TurnWrite | None = None,
        after: PendingCommit | None = None,
    ) -> PendingCommit:
        """Queue a durable, atomic write of ``state``, the new ``(seq, role, content)``
        messages and the turn's key (``turn``); await the result to know it is durable (it
        raises StoreError if it is not). With ``after``, it is written only if that earlier
        commit was."""
        # Serialise here, on the loop, so the store thread never reads a state being mutated.
        row = (
            state.destination,
            state.start_date,
            state.end_date,
            state.budget,
            jsoncodec.dumps(state.preferences),  # compact JSON lists: read back with json.loads
            jsoncodec.dumps(state.itinerary),
            state.message_count,
        )
        args = (name, row, list(appended), turn)
        return PendingCommit(self._submit("commit", self._write, args, write=True, after=after))

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
        await self.begin_commit(name, state, appended, turn=turn)

    async def messages(self, name: str) -> list[tuple[int, str, str]]:
        """Stored ``(seq, role, content)`` of an agent, oldest first."""
        return await self._run("read messages", self._messages, name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)

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


class _Job:
    """One read or commit on its way through the store thread."""

    __slots__ = (
        "after",
        "args",
        "error",
        "fn",
        "future",
        "loop",
        "path",
        "result",
        "what",
        "write",
    )  # fmt: skip

    def __init__(
        self, what: str, fn: Callable[..., Any], args: tuple[Any, ...], write: bool,
        loop: asyncio.AbstractEventLoop, path: str,
    ) -> None:  # fmt: skip
        self.what, self.fn, self.args, self.write, self.path = what, fn, args, write, path
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.after: _Job | None = None
        self.result: Any = None
        self.error: BaseException | None = None


class PendingCommit:
    """A queued commit: await it to know it is durable."""

    __slots__ = ("job",)

    def __init__(self, job: _Job) -> None:
        self.job = job

    @property
    def future(self) -> asyncio.Future[None]:
        """Done once the commit is durable (result None) or has failed (StoreError)."""
        return self.job.future

    def __await__(self) -> Generator[Any, None, None]:
        return self.job.future.__await__()


def _settle(jobs: list[_Job]) -> None:
    """Resolve the jobs' futures on their loops: one wake-up per loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
    for job in jobs:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, mine in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, mine)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _resolve(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled
            continue
        if job.error is None:
            job.future.set_result(None)
        elif isinstance(job.error, sqlite3.Error):
            err = StoreError(f"store {job.path}: {job.what} failed: {job.error}")
            err.__cause__ = job.error
            job.future.set_exception(err)
        else:
            job.future.set_exception(job.error)
