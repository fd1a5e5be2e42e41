from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from conftest import free_port
from test_agent_actor import FAST, FlakyLLM, RecordingSink, stored
from websockets.asyncio.client import connect

from travelagent.agent.base import LLMBackend
from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.host import create_app
from travelagent.agent.llm.simulated import SimulatedLLM
from travelagent.agent.remote import RemoteAgentDirectory
from travelagent.agent.travel_agent import AgentError
from travelagent.config import AGENT_HOST_TOKEN_ENV, secret
from travelagent.http_auth import bearer_headers
from travelagent.wire import gateway
from travelagent.wire.trace import Trace

AUTH = bearer_headers(secret(AGENT_HOST_TOKEN_ENV))


@asynccontextmanager
async def agent_host(
    db: Path, port: int, llm: LLMBackend | None = None, *, stream_default: bool = False
) -> AsyncIterator[str]:
    directory = LocalAgentDirectory(db, llm=llm or SimulatedLLM(profile=FAST), process="agents")
    runner = web.AppRunner(create_app(directory, stream_default=stream_default))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()  # also closes the directory


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "host.db"


@pytest.fixture
async def host(db: Path, port: int) -> AsyncIterator[str]:
    async with agent_host(db, port) as url:
        yield url


@pytest.fixture
async def remote(host: str) -> AsyncIterator[RemoteAgentDirectory]:
    d = RemoteAgentDirectory(host)
    try:
        yield d
    finally:
        await d.close()


async def test_healthz_answers_with_a_small_json_body(host: str) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        resp = await client.get(host + "/healthz")
    assert resp.status_code == 200
    assert resp.json()["service"] == "agents"


async def test_remote_rpc_returns_the_reply_and_the_hosts_stamps_land_in_the_callers_trace(
    remote: RemoteAgentDirectory, db: Path
) -> None:
    trace = Trace.start()
    trace.stamp("worker.recv", "worker")
    reply = await remote.get("u1").handle_message("hotels in Tokyo", trace=trace)
    assert "Park Hyatt Tokyo" in reply
    assert [(n, p) for n, _, p in trace.stamps] == [
        ("worker.recv", "worker"),
        ("agent.start", "agents"),
        ("llm.first", "agents"),
        ("llm.done", "agents"),
        ("agent.done", "agents"),
    ]
    assert stored(db, "u1")[-1] == ("assistant", reply)


async def test_remote_stream_chunks_join_to_the_committed_reply(
    remote: RemoteAgentDirectory, db: Path
) -> None:
    trace = Trace.start()
    chunks = [c async for c in remote.get("u1").stream_message("budget tips", trace=trace)]
    assert len(chunks) > 10
    assert stored(db, "u1")[-1] == ("assistant", "".join(chunks))
    assert trace.get("agent.done") is not None


@pytest.mark.parametrize("stream", [True, False])
async def test_remote_on_message_speaks_to_the_sink_like_a_local_agent(
    remote: RemoteAgentDirectory, stream: bool
) -> None:
    sink = RecordingSink()
    trace = Trace.start()
    await remote.get("u1").on_message(sink, "when to visit Rome", trace=trace, stream=stream)
    kinds = [k for k, _ in sink.events]
    if stream:
        assert kinds[0] == "start" and kinds[-1] == "complete" and "chunk" in kinds
        assert "".join(t for k, t in sink.events if k == "chunk") == sink.events[-1][1]
    else:
        assert kinds == ["response"]
    assert "Rome" in sink.events[-1][1]
    assert trace.get("agent.done") is not None


async def test_concurrent_remote_messages_keep_their_arrival_order(
    remote: RemoteAgentDirectory, db: Path
) -> None:
    agent = remote.get("u1")
    await asyncio.gather(*(agent.handle_message(f"message {i}") for i in range(10)))
    users = [c for r, c in stored(db, "u1") if r == "user"]
    assert users == [f"message {i}" for i in range(10)]


async def test_state_survives_a_host_restart(db: Path, tmp_path: Path) -> None:
    port = free_port()
    async with agent_host(db, port) as url:
        d = RemoteAgentDirectory(url)
        await d.get("u1").handle_message("add day trip to Kyoto")
        await d.close()
    port = free_port()
    async with agent_host(db, port) as url:
        d = RemoteAgentDirectory(url)
        try:
            reply = await d.get("u1").handle_message("show my itinerary")
        finally:
            await d.close()
    assert "1. Kyoto" in reply


async def test_unreachable_host_is_a_clear_error_not_a_hang(port: int) -> None:
    d = RemoteAgentDirectory(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(AgentError, match="unreachable"):
            await d.get("u1").handle_message("hi")
        sink = RecordingSink()
        await d.get("u1").on_message(sink, "hi", trace=None, stream=True)
        assert sink.events[-1][0] == "error"
    finally:
        await d.close()


async def test_llm_failure_in_the_host_reaches_the_caller_with_its_reason(
    db: Path, port: int
) -> None:
    async with agent_host(db, port, FlakyLLM()) as url:
        d = RemoteAgentDirectory(url)
        try:
            with pytest.raises(AgentError, match="model exploded"):
                await d.get("u1").handle_message("boom")
            with pytest.raises(AgentError, match="model exploded"):
                async for _ in d.get("u1").stream_message("boom"):
                    pass
            assert await d.get("u1").handle_message("fine") == "partial ok"
        finally:
            await d.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"text": ""}', "non-empty string"),
        (b'{"text": "hi", "stream": "yes"}', "'stream'"),
        (b'{"text": "hi", "trace": {"id": ""}}', "bad trace"),
    ],
)
async def test_bad_rpc_input_gets_a_400_with_a_reason(host: str, body: bytes, reason: str) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        resp = await client.post(host + "/agents/TravelAgent/u1/rpc", content=body)
    assert resp.status_code == 400
    assert reason in resp.json()["error"]


async def test_bad_agent_name_gets_a_400(host: str) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        resp = await client.post(host + "/agents/TravelAgent/%01/rpc", json={"text": "hi"})
    assert resp.status_code == 400


async def test_rpc_stream_is_ndjson_chunks_then_a_done_line_with_the_trace(host: str) -> None:
    trace = Trace.start()
    body = {"text": "hotels in Paris", "stream": True, "trace": trace.to_wire()}
    async with httpx.AsyncClient(headers=AUTH) as client:
        resp = await client.post(host + "/agents/TravelAgent/u9/rpc", json=body)
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    assert all("chunk" in line for line in lines[:-1])
    assert lines[-1]["done"] is True
    assert lines[-1]["text"] == "".join(line["chunk"] for line in lines[:-1])
    assert Trace.from_wire(lines[-1]["trace"]).get("agent.done") is not None


async def test_websocket_route_speaks_the_gateway_wire_format(host: str) -> None:
    ws_url = host.replace("http", "ws") + "/agents/TravelAgent/u1"
    async with connect(ws_url, additional_headers=AUTH) as ws:
        await ws.send("{broken")
        err = gateway.parse_server_frame(await ws.recv())
        assert err.kind is gateway.ServerFrameKind.ERROR and "JSON" in (err.error or "")

        trace = Trace.start()
        await ws.send(gateway.message_frame("budget tips", user_id="u1", trace=trace, stream=True))
        frames: list[Any] = []
        while not frames or frames[-1].kind is not gateway.ServerFrameKind.COMPLETE:
            frames.append(gateway.parse_server_frame(await ws.recv()))
        assert frames[0].kind is gateway.ServerFrameKind.START
        chunks = [f.text for f in frames if f.kind is gateway.ServerFrameKind.CHUNK]
        assert "".join(chunks) == frames[-1].text
        final = frames[-1]
        assert final.user_id == "u1" and final.id == trace.id
        assert final.trace is not None and final.trace.get("agent.done") is not None

        await ws.send(gateway.message_frame("hotels in Rome", user_id="u1"))
        plain = gateway.parse_server_frame(await ws.recv())
        assert plain.kind is gateway.ServerFrameKind.RESPONSE and "Rome" in plain.text


async def test_serve_agents_command_starts_a_host_that_answers(tmp_path: Path, tf: float) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "travelagent", "serve", "agents", "--port", str(port)]
    cmd += ["--db", str(tmp_path / "cli.db"), "--profile", "note", "--seed", "3"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(headers=AUTH) as client:
            for _ in range(int(100 * tf)):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # polling a starting process: no event to await
            else:
                pytest.fail("agent host did not become healthy")
            resp = await client.post(
                f"http://127.0.0.1:{port}/agents/TravelAgent/u1/rpc", json={"text": "hi"}
            )
        assert resp.status_code == 200 and "I can help" in resp.json()["text"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 10 * tf)


def test_serve_agents_rejects_an_unknown_profile_with_a_message() -> None:
    cmd = [sys.executable, "-m", "travelagent", "serve", "agents", "--profile", "nope"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "valid profiles" in done.stderr


async def test_pipelined_websocket_messages_are_answered_in_order(host: str, db: Path) -> None:
    ws_url = host.replace("http", "ws") + "/agents/TravelAgent/u1"
    async with connect(ws_url, additional_headers=AUTH) as ws:
        for i in range(8):
            await ws.send(gateway.message_frame(f"message {i}", msg_id=f"m{i}"))
        ids = [gateway.parse_server_frame(await ws.recv()).id for _ in range(8)]
        await ws.send(b"\x00binary")
        err = gateway.parse_server_frame(await ws.recv())
    assert ids == [f"m{i}" for i in range(8)]
    assert err.kind is gateway.ServerFrameKind.ERROR and "binary" in (err.error or "")
    assert [c for r, c in stored(db, "u1") if r == "user"] == [f"message {i}" for i in range(8)]


async def test_remote_listeners_hear_itinerary_changes_made_in_the_host(
    remote: RemoteAgentDirectory, tf: float
) -> None:
    agent = remote.get("u1")
    events: list[dict[str, Any]] = []
    got_two = asyncio.Event()

    async def listener(event: dict[str, Any]) -> None:
        events.append(event)
        if len(events) == 2:
            got_two.set()

    agent.add_listener(listener)
    await agent.handle_message("add day trip to Kyoto")
    await agent.handle_message("hotels in Tokyo")  # no change, no event
    async for _ in agent.stream_message("add day trip to Nikko"):
        pass
    await asyncio.wait_for(got_two.wait(), 5 * tf)
    await agent.flush_listeners()
    assert [e["type"] for e in events] == ["itinerary", "itinerary"]
    assert [i["name"] for i in events[1]["itinerary"]] == ["Kyoto", "Nikko"]
    assert events[0] == {
        "type": "itinerary",
        "agent": "u1",
        "itinerary": [{"kind": "day_trip", "name": "Kyoto"}],
    }


@pytest.mark.parametrize(
    ("status", "body", "stream", "reason"),
    [
        (200, b"[1]", False, "malformed reply"),
        (502, b"<html>bad gateway</html>", False, "HTTP 502: <html>bad gateway"),
        (200, b'{"chunk": "a"}\n[1]\n', True, "malformed stream line"),
        (200, b'{"chunk": "a"}\n', True, "without a final line"),
        (500, b'{"error": "store is closed"}', True, "HTTP 500: store is closed"),
    ],
)
async def test_a_misbehaving_host_is_a_clear_agent_error(
    status: int, body: bytes, stream: bool, reason: str
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    d = RemoteAgentDirectory("http://agents.invalid", transport=transport)
    try:
        with pytest.raises(AgentError, match=re.escape(reason)):
            if stream:
                async for _ in d.get("u1").stream_message("hi"):
                    pass
            else:
                await d.get("u1").handle_message("hi")
    finally:
        await d.close()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["none", "wrong-token", "basic"],
)
async def test_rpc_and_websocket_without_the_token_are_refused_and_counted(
    host: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(headers=headers) as client:
        rpc_resp = await client.post(host + "/agents/TravelAgent/u1/rpc", json={"text": "hi"})
        ws_resp = await client.get(host + "/agents/TravelAgent/u1")
        health = (await client.get(host + "/healthz")).json()
    assert rpc_resp.status_code == 401 and ws_resp.status_code == 401
    assert health["refused_unauthorized"] == 2
