"""Bounds on the pure cores: each configurable, each refusal or release counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from travelagent.limits import ConnectionLimiter
from travelagent.realtime.history import History, HistoryPolicy
from travelagent.worker.hybrid import RoomAnnouncer

POLICIES = {"travel": HistoryPolicy(size=10, ttl_s=60.0)}


def test_connections_per_address_are_capped_and_released() -> None:
    lim = ConnectionLimiter(2)
    assert lim.acquire("a") and lim.acquire("a") and not lim.acquire("a")
    assert lim.acquire("b")
    lim.release("a")
    assert lim.acquire("a")
    assert all(ConnectionLimiter(0).acquire("a") for _ in range(100))


def test_an_unused_history_stream_is_evicted_after_its_ttl() -> None:
    h = History(POLICIES, stream_ttl_s=100.0)
    _, epoch = h.add("travel:old", {"n": 1}, None, now_s=0.0)
    h.add("travel:new", {"n": 1}, None, now_s=50.0)
    h.add("travel:new", {"n": 2}, None, now_s=150.0)  # travel:old unused for 150 s
    assert set(h.streams) == {"travel:new"} and h.evicted_streams == 1
    # Recovering from the evicted stream is refused (a new epoch), never silently wrong.
    rec = h.recover("travel:old", 1, epoch, now_s=151.0)
    assert not rec.recovered and rec.epoch != epoch


def test_past_the_stream_cap_the_least_recently_used_stream_is_evicted() -> None:
    h = History(POLICIES, max_streams=2, stream_ttl_s=0)
    h.add("travel:a", 1, None, now_s=1.0)
    h.add("travel:b", 1, None, now_s=2.0)
    h.read("travel:a", now_s=3.0, limit=-1)  # a is used again: b is now the oldest
    h.add("travel:c", 1, None, now_s=4.0)
    assert set(h.streams) == {"travel:a", "travel:c"} and h.evicted_streams == 1


class _Agent:
    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def publish(self, channel: str, data: Any) -> None:
        self.sent.append(channel)


def test_room_bindings_are_counted_undone_and_capped_least_recent_first() -> None:
    pub = _Publisher()
    rooms = RoomAnnouncer(pub, max_bindings=2)  # type: ignore[arg-type]
    a = _Agent()
    rooms.bind("u1", "r1", a)  # type: ignore[arg-type]
    rooms.bind("u1", "r1", a)  # type: ignore[arg-type]  # a second socket, same room
    rooms.unbind("u1", "r1")
    assert rooms.rooms == {"u1": {"r1": 1}}
    rooms.bind("u2", "r2", _Agent())  # type: ignore[arg-type]
    rooms.bind("u3", "r3", _Agent())  # type: ignore[arg-type]
    assert rooms.bindings() == 2 and rooms.released == 1 and "u1" not in rooms.rooms
    asyncio.run(a.listeners[0]({"type": "itinerary"}))
    assert pub.sent == []  # u1's released binding hears nothing more
    rooms.unbind("u1", "r1")  # the socket closing later is harmless
    assert rooms.bindings() == 2


async def test_past_the_agent_cap_idle_agents_are_released_and_busy_ones_kept(
    tmp_path: Path,
) -> None:
    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.llm import make_llm

    d = LocalAgentDirectory(
        tmp_path / "a.db", llm=make_llm("simulated", profile="instant", seed=1), max_agents=2
    )
    busy = d.get("busy")
    await busy._gate.acquire()  # as if in the middle of a turn
    d.get("idle")
    d.get("third")
    assert len(d) == 2 and d.released == 1
    assert d.get("busy") is busy  # never a second instance of a busy agent
    busy._gate.release()
    # A released agent comes back as a fresh instance reading its state from the store.
    reply = await d.get("idle").handle_message("hotels in Paris")
    assert "Paris" in reply
    await d.close()


# --- the internal APIs: agent host and link control, over real sockets ----------------------


async def _half_sent_headers_are_closed(port: int, path: str, tf: float) -> float:
    """Five connections that stop halfway through their headers; the seconds until the server
    has closed them all (each read returns b"" only when the server closes)."""
    import time

    half_open = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthoriza".encode())
        await writer.drain()
        half_open.append((reader, writer))
    t0 = time.monotonic()
    for reader, writer in half_open:
        assert await asyncio.wait_for(reader.read(), 10 * tf) == b""
        writer.close()
    return time.monotonic() - t0


async def _held_body(port: int, path: str, token: str) -> asyncio.StreamWriter:
    """A POST whose body never finishes: its handler stays in progress until the socket closes."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
    )
    await writer.drain()
    return writer


async def test_agent_host_caps_bodies_concurrency_and_header_time(
    tmp_path: Path, port: int, tf: float
) -> None:
    import httpx
    from aiohttp import web

    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.host import create_app
    from travelagent.agent.llm import make_llm
    from travelagent.http_auth import bearer_headers

    token = "agent-host-test-token"
    directory = LocalAgentDirectory(
        tmp_path / "a.db", llm=make_llm("simulated", profile="instant", seed=1)
    )
    runner = web.AppRunner(
        create_app(directory, token=token, max_concurrent=2), keepalive_timeout=0.5
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    rpc = "/agents/TravelAgent/u1/rpc"
    try:
        async with httpx.AsyncClient(base_url=base, headers=bearer_headers(token)) as http:
            big = await http.post(rpc, content=b'{"text": "' + b"x" * (2 << 20) + b'"}')
            assert big.status_code == 413
            held = [await _held_body(port, rpc, token) for _ in range(2)]
            await asyncio.sleep(0.2 * tf)
            busy = await http.post(rpc, json={"text": "hotels in Paris", "stream": False})
            assert busy.status_code == 503
            health = (await http.get("/healthz")).json()  # answers even at the cap
            assert health["refused_busy"] == 1
            for w in held:
                w.close()
            await asyncio.sleep(0.2 * tf)
            ok = await http.post(rpc, json={"text": "hotels in Paris", "stream": False})
            assert ok.status_code == 200, ok.text
        assert await _half_sent_headers_are_closed(port, rpc, tf) < 5 * tf
    finally:
        await runner.cleanup()


async def test_link_control_caps_bodies_concurrency_and_header_time(tf: float) -> None:
    import httpx

    from travelagent.http_auth import bearer_headers
    from travelagent.link.control import MAX_CONTROL_BODY_BYTES, LinkSet, serve_control

    token = "link-control-test-token"
    runner = await serve_control(
        LinkSet([]), "127.0.0.1", 0, token=token, max_concurrent=2, keepalive_timeout_s=0.5
    )
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=bearer_headers(token)
        ) as http:
            big = await http.post("/schedule/start", content=b"x" * (MAX_CONTROL_BODY_BYTES + 1))
            assert big.status_code == 413
            held = [await _held_body(port, "/schedule/start", token) for _ in range(2)]
            await asyncio.sleep(0.2 * tf)
            assert (await http.get("/links")).status_code == 503
            health = (await http.get("/healthz")).json()
            assert health["refused_busy"] == 1
            for w in held:
                w.close()
            await asyncio.sleep(0.2 * tf)
            assert (await http.get("/links")).status_code == 200
        assert await _half_sent_headers_are_closed(port, "/links", tf) < 5 * tf
    finally:
        await runner.cleanup()


async def test_the_worker_closes_connections_that_never_finish_their_headers(
    tmp_path: Path, port: int, tf: float
) -> None:
    from worker_helpers import running_worker

    async with running_worker(port, tmp_path / "w.db", keepalive_timeout_s=0.5):
        for path in ("/api/gateway/ws?userId=u1", "/api/realtime/webhook"):
            assert await _half_sent_headers_are_closed(port, path, tf) < 5 * tf


async def test_agent_host_socket_refuses_messages_past_its_in_flight_cap(
    tmp_path: Path, port: int, tf: float
) -> None:
    import json

    import httpx
    from aiohttp import web
    from websockets.asyncio.client import connect

    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.host import MAX_INFLIGHT_PER_SOCKET, create_app
    from travelagent.agent.llm import make_llm
    from travelagent.http_auth import bearer_headers

    token = "agent-host-test-token"
    # "note" answers in about a second: the agent's gate holds every message but the first.
    directory = LocalAgentDirectory(tmp_path / "a.db", llm=make_llm("simulated", profile="note"))
    # A short grace at cleanup: the turns still queued are cut off, not waited for.
    runner = web.AppRunner(create_app(directory, token=token), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"ws://127.0.0.1:{port}/agents/TravelAgent/u1"
        async with connect(url, additional_headers=bearer_headers(token)) as ws:
            n = MAX_INFLIGHT_PER_SOCKET + 2
            for i in range(n):
                frame = {"type": "message", "text": "hotels in Paris", "id": f"m{i}"}
                await ws.send(json.dumps(frame))
            refused: list[str] = []
            while len(refused) < 2:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10 * tf))
                if "in flight" in str(frame.get("error", "")):
                    refused.append(frame["id"])
            assert refused == [f"m{n - 2}", f"m{n - 1}"]
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        assert health["refused_inflight"] == 2
    finally:
        await runner.cleanup()
