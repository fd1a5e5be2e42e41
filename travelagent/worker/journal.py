"""The turns the worker has promised: ``ack-first`` answers 200 only after it wrote the turn here.

In ``ack-first`` mode (and for Centrifugo's publish proxy, which is never retried) the realtime
service is told "accepted" before the agent has answered, so after that nobody would ask again.
The worker therefore writes the turn's order (channel, user, message id, text, stream, trace)
to this table first, fsynced (``synchronous=FULL``), and answers 200 after; the entry is
deleted once the reply's final publication was accepted. At start the worker runs every turn
still owed in the background: the agent's message-id key makes that a replay of a stored reply
(or the resumption of one cut off), and the publication's idempotency key makes the realtime
service keep one final. So a worker killed after "accepted" still delivers the reply.

One write per promised turn, on its own thread; ``after-publish`` mode pays nothing here.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from travelagent.sqlite import open_db
from travelagent.wire.trace import Trace
from travelagent.worker.intake import TurnOrder

SCHEMA = """
CREATE TABLE IF NOT EXISTS owed_turns (
    agent   TEXT NOT NULL,
    msg_id  TEXT NOT NULL,
    channel TEXT NOT NULL,
    text    TEXT NOT NULL,
    stream  INTEGER NOT NULL,
    trace   TEXT NOT NULL,                      -- JSON, as received
    PRIMARY KEY (agent, msg_id)
) WITHOUT ROWID;
"""


class TurnJournal:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        # synchronous left at SQLite's default (FULL): 200 is answered only once this is durable
        self._conn = open_db(self.path, SCHEMA, synchronous=None, check_same_thread=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-journal")
        self._closed = False

    def owed(self) -> list[TurnOrder]:
        """The turns promised and not yet published (read at start)."""
        rows = self._conn.execute(
            "SELECT agent, msg_id, channel, text, stream, trace FROM owed_turns"
        ).fetchall()
        return [
            TurnOrder(str(c), str(a), str(m), str(t), Trace.from_wire(json.loads(tr)), bool(s))
            for a, m, c, t, s, tr in rows
        ]

    async def owe(self, order: TurnOrder) -> None:
        """Durably write ``order``; raise sqlite3.Error if that failed."""
        row = (
            order.user_id,
            order.msg_id,
            order.channel,
            order.text,
            int(order.stream),
            json.dumps(order.trace.to_wire()),
        )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._owe, row)

    def _owe(self, row: tuple[object, ...]) -> None:
        # synchronous=FULL (the default) fsyncs this commit: the 200 that follows is a promise.
        self._conn.execute(
            "INSERT OR IGNORE INTO owed_turns (agent, msg_id, channel, text, stream, trace)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )

    def settled(self, order: TurnOrder) -> None:
        """The turn's final publication was accepted: forget it (in the background)."""
        if not self._closed:
            self._executor.submit(self._settled, order.user_id, order.msg_id)

    def _settled(self, agent: str, msg_id: str) -> None:
        self._conn.execute("DELETE FROM owed_turns WHERE agent = ? AND msg_id = ?", (agent, msg_id))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._conn.close()
