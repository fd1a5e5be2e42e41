"""Gateway resume over real sockets: a client whose socket is reset mid-reply reconnects, asks
for the replies after the last one it saw, and gets the one it missed once, in order; an
unknown id gets a clear error; nobody resumes another user's replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import free_port
from worker_helpers import JWT_SECRET, GatedLLM, connect, recv_reply, running_worker

from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.host import create_app as create_agent_host
from travelagent.agent.llm import make_llm
from travelagent.client.centrifugo import make_token
from travelagent.link.faults import Faults
from travelagent.link.proxy import Link
from travelagent.link.schedule import LinkShape


def message(msg_id: str, user: str = "u1") -> str:
    return json.dumps({"type": "message", "text": "hotels in Paris", "userId": user, "id": msg_id})


def resume(after: str | None, pending: list[str] | None = None) -> str:
    return json.dumps({"type": "resume", "after": after, "pending": pending or []})


async def recv_json(ws: Any, timeout_s: float) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))


async def until_resumed(ws: Any, timeout_s: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Frames up to the ``resumed`` frame, and that frame."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await recv_json(ws, timeout_s)
        if frame.get("type") == "resumed":
            return frames, frame
        frames.append(frame)


@pytest.fixture
async def link(port: int) -> AsyncIterator[Link]:
    link = Link(
        "gateway",
        listen_host="127.0.0.1",
        listen_port=0,
        upstream_host="127.0.0.1",
        upstream_port=port,
        shape=LinkShape(delay_ms=0, setup_rtts=0),
        seed=1,
    )
    await link.start()
    try:
        yield link
    finally:
        await link.stop()


async def committed(app: web.Application, user: str, msg_id: str, tf: float) -> None:
    from travelagent.worker.keys import DIRECTORY

    agent = app[DIRECTORY].get(user)
    for _ in range(int(200 * tf)):
        found = await agent.replies_after(None, [msg_id])
        if found.pending[msg_id] == "done":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{msg_id} never committed")


async def test_a_reply_cut_off_by_a_socket_reset_arrives_once_by_resume(
    port: int, link: Link, tmp_path: Path, tf: float
) -> None:
    llm = GatedLLM()
    async with running_worker(port, tmp_path / "a.db", llm=llm) as app:
        async with connect(link.listen_port) as ws:
            await ws.send(message("m1"))
            first = await recv_reply(ws, 5 * tf)
            llm.hold = True
            await ws.send(message("m2"))
            start = await recv_json(ws, 5 * tf)
            chunk = await recv_json(ws, 5 * tf)
            assert start.get("streaming") and chunk.get("chunk") and chunk["id"] == "m2"
            await link.set_faults(Faults(reset=True))  # RST to both peers, mid-reply
            with pytest.raises(Exception):  # noqa: B017 - any flavour of a reset socket
                await recv_reply(ws, 5 * tf)
        llm.gate.set()
        await committed(app, "u1", "m2", tf)
        await link.set_faults(Faults())
        async with connect(link.listen_port) as ws:
            await ws.send(resume("m1", ["m2"]))
            replayed, done = await until_resumed(ws, 5 * tf)
            await ws.send(resume("m1", ["m2"]))  # asked twice: the same answer, nothing new run
            again, _ = await until_resumed(ws, 5 * tf)
    assert first[-1]["id"] == "m1"
    assert [f["id"] for f in replayed] == ["m2"]
    reply = replayed[0]
    assert reply["type"] == "response" and reply["replay"] is True
    assert reply["text"] == "Reply 2 begins. Reply 2 ends."
    names = [s[0] for s in reply["trace"]["stamps"]]
    assert names[:2] == ["worker.recv", "agent.start"] and names[-1] == "worker.send"
    assert done == {"type": "resumed", "after": "m1", "replayed": 1, "pending": {"m2": "done"}}
    assert [f["id"] for f in again] == ["m2"]
    assert llm.runs == 2


async def test_a_resume_during_the_reply_says_started_and_a_resend_joins_the_run(
    port: int, tmp_path: Path, tf: float
) -> None:
    llm = GatedLLM()
    async with running_worker(port, tmp_path / "a.db", llm=llm):
        async with connect(port) as ws:
            await ws.send(message("m1"))
            await recv_reply(ws, 5 * tf)
            llm.hold = True
            await ws.send(message("m2"))
            await recv_json(ws, 5 * tf)
        async with connect(port) as ws:
            await ws.send(resume("m1", ["m2", "m3"]))
            replayed, done = await until_resumed(ws, 5 * tf)
            await ws.send(message("m2"))  # the same id: joins the run under way
            llm.gate.set()
            reply = await recv_reply(ws, 5 * tf)
    assert replayed == []
    assert done["pending"] == {"m2": "started", "m3": "new"}
    assert reply[-1]["text"] == "Reply 2 begins. Reply 2 ends." and reply[-1]["id"] == "m2"
    assert llm.runs == 2


async def test_missed_replies_come_in_commit_order_and_only_those_after_the_last_seen(
    port: int, tmp_path: Path, tf: float
) -> None:
    async with running_worker(port, tmp_path / "a.db", llm=GatedLLM()):
        async with connect(port) as ws:
            for i in range(1, 6):
                await ws.send(message(f"m{i}"))
            for _ in range(5):
                await recv_reply(ws, 5 * tf)
        async with connect(port, "userId=u1&resumeAfter=m2") as ws:  # on connect, by query
            replayed, done = await until_resumed(ws, 5 * tf)
        async with connect(port) as ws:
            await ws.send(resume("m5"))
            nothing, at_end = await until_resumed(ws, 5 * tf)
    assert [f["id"] for f in replayed] == ["m3", "m4", "m5"]
    assert [f["text"] for f in replayed] == [
        f"Reply {i} begins. Reply {i} ends." for i in (3, 4, 5)
    ]
    assert done["replayed"] == 3 and done["after"] == "m2"
    assert nothing == [] and at_end["replayed"] == 0


async def test_an_unknown_id_gets_an_error_and_the_socket_keeps_working(
    port: int, tmp_path: Path, tf: float
) -> None:
    async with running_worker(port, tmp_path / "a.db", llm=GatedLLM()) as app:
        async with connect(port) as ws:
            await ws.send(resume("never-sent"))
            frame = await recv_json(ws, 5 * tf)
            await ws.send(json.dumps({"type": "resume", "after": 7}))
            bad = await recv_json(ws, 5 * tf)
            await ws.send(message("m1"))
            reply = await recv_reply(ws, 5 * tf)
        async with connect(port, "userId=u1&resumeAfter=nope") as ws:
            by_query = await recv_json(ws, 5 * tf)
        from travelagent.worker.keys import STATS

        unknown = app[STATS]["gateway_resume_unknown"]
    assert frame["type"] == "resumed" and frame["after"] == "never-sent"
    assert "unknown message id 'never-sent'" in frame["error"] and "replayed" not in frame
    assert bad["type"] == "response" and "'after' must be a message id" in bad["error"]
    assert reply[-1]["id"] == "m1" and reply[-1].get("complete")
    assert by_query["type"] == "resumed" and "unknown message id" in by_query["error"]
    assert unknown == 2


async def test_a_resume_never_gives_another_users_replies(
    port: int, tmp_path: Path, tf: float
) -> None:
    """With tokens, the socket's user is the token's sub: u2 naming u1's message ids gets
    nothing of u1's, whether by position, by id or by claiming u1's userId."""
    async with running_worker(port, tmp_path / "a.db", llm=GatedLLM(), gateway_access="token"):
        u1 = make_token("u1", JWT_SECRET)
        u2 = make_token("u2", JWT_SECRET)
        async with connect(port, f"token={u1}") as ws:
            await ws.send(message("a1"))
            await recv_reply(ws, 5 * tf)
            await ws.send(message("a2"))
            await recv_reply(ws, 5 * tf)
        async with connect(port, f"token={u2}") as ws:
            await ws.send(json.dumps({"type": "resume", "after": "a1"}))
            by_position = await recv_json(ws, 5 * tf)
            await ws.send(resume(None, ["a1", "a2"]))
            by_id, done = await until_resumed(ws, 5 * tf)
            await ws.send(json.dumps({"type": "resume", "after": None, "userId": "u1"}))
            claimed = await recv_json(ws, 5 * tf)
        async with connect(port, f"token={u2}&resumeAfter=a1") as ws:
            by_query = await recv_json(ws, 5 * tf)
        async with connect(port, f"token={u1}&resumeAfter=a1") as ws:
            own = await until_resumed(ws, 5 * tf)
    assert "unknown message id 'a1'" in by_position["error"]
    assert by_id == [] and done["pending"] == {"a1": "new", "a2": "new"}
    assert "bound to userId 'u2'" in claimed["error"]
    assert "unknown message id" in by_query["error"]
    assert [f["id"] for f in own[0]] == ["a2"]


async def test_resume_reaches_agents_in_a_separate_agent_host(
    port: int, tmp_path: Path, tf: float
) -> None:
    host_port = free_port()
    directory = LocalAgentDirectory(
        tmp_path / "host.db", llm=make_llm("simulated", profile="instant", seed=1), process="agents"
    )
    runner = web.AppRunner(create_agent_host(directory))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", host_port).start()
    try:
        async with running_worker(
            port, tmp_path / "w.db", agents_url=f"http://127.0.0.1:{host_port}"
        ):
            async with connect(port) as ws:
                for i in (1, 2, 3):
                    await ws.send(message(f"r{i}"))
                sent = [await recv_reply(ws, 5 * tf) for _ in range(3)]
            async with connect(port) as ws:
                await ws.send(resume("r1", ["r3", "zz"]))
                replayed, done = await until_resumed(ws, 5 * tf)
                await ws.send(resume("zz"))
                unknown = await recv_json(ws, 5 * tf)
    finally:
        await runner.cleanup()
    assert [f["id"] for f in replayed] == ["r2", "r3"]
    assert [f["text"] for f in replayed] == [s[-1]["text"] for s in sent[1:]]
    assert done["pending"] == {"r3": "done", "zz": "new"}
    assert "unknown message id 'zz'" in unknown["error"]
