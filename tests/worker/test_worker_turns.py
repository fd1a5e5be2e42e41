"""A turn keyed by its message id, over real sockets: resends to a live, a restarted and a
SIGKILLed worker never run the agent twice and get the stored reply."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from worker_helpers import connect, recv_reply, running_worker

from travelagent.agent.llm import make_llm
from travelagent.runner.procs import ServedProcess
from travelagent.wire.trace import Trace


class CountingLLM:
    """The simulated model, counting the turns it is asked for."""

    def __init__(self) -> None:
        self.inner = make_llm("simulated", profile="instant", seed=1)
        self.runs = 0

    def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        self.runs += 1
        return self.inner.stream(messages, trace=trace, process=process)

    async def aclose(self) -> None:
        await self.inner.aclose()


def message(msg_id: str, text: str = "hotels in Paris") -> str:
    return json.dumps({"type": "message", "text": text, "userId": "u1", "id": msg_id})


async def ask(port: int, msg_id: str, **kw: Any) -> list[dict[str, Any]]:
    async with connect(port, "userId=u1") as ws:
        await ws.send(message(msg_id, **kw))
        return await recv_reply(ws)


def assistant_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (n,) = conn.execute("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").fetchone()
        return int(n)
    finally:
        conn.close()


async def test_a_resent_id_gets_the_stored_reply_from_a_live_and_a_restarted_worker(
    port: int, tmp_path: Path
) -> None:
    db = tmp_path / "a.db"
    first_llm, second_llm = CountingLLM(), CountingLLM()
    async with running_worker(port, db, llm=first_llm):
        first = await ask(port, "m1")
        async with connect(port, "userId=u1") as ws:  # a resend on a new socket, and twice
            await ws.send(message("m1"))
            await ws.send(message("m1"))
            resent = [await recv_reply(ws), await recv_reply(ws)]
    async with running_worker(port, db, llm=second_llm):
        after_restart = await ask(port, "m1")
        other = await ask(port, "m2")
    assert first_llm.runs == 1 and second_llm.runs == 1  # m2 only
    final = first[-1]["text"]
    assert final and "Paris" in final
    assert [r[-1]["text"] for r in resent] == [final, final]
    assert after_restart[-1]["text"] == final and after_restart[-1]["id"] == "m1"
    assert after_restart[-1].get("complete") is True
    assert other[-1]["id"] == "m2"
    assert assistant_rows(db) == 2


async def test_a_resent_id_after_the_worker_is_killed_is_not_run_again(
    port: int, tmp_path: Path, tf: float
) -> None:
    db = tmp_path / "a.db"
    argv = [sys.executable, "-m", "travelagent", "serve", "worker", "--port", str(port),
            "--db", str(db), "--profile", "instant"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/healthz"
    with ServedProcess(argv, url, timeout_s=30 * tf) as worker:
        first = await ask(port, "m1")
        assert worker.proc is not None
        worker.proc.kill()  # SIGKILL: no shutdown, no flush
        worker.proc.wait()
    with ServedProcess(argv, url, timeout_s=30 * tf):
        again = await ask(port, "m1")
    assert again[-1]["text"] == first[-1]["text"]
    assert assistant_rows(db) == 1
