"""The realtime service over real sockets, spoken to with our own Centrifugo client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from travelagent.client.centrifugo import (
    CentrifugoClient,
    CentrifugoError,
    ConnectionLost,
    Push,
    make_token,
)
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import RunningRealtime, running_realtime
from travelagent.wire.trace import Trace

JWT_SECRET = "test-jwt-secret-that-is-long-enough-32"
API_KEY = "test-api-key"


def config(port: int, **kw: object) -> RealtimeConfig:
    base: dict[str, object] = dict(
        port=port,
        jwt_secret=JWT_SECRET,
        api_key=API_KEY,
        webhook_secret="whsec_dGVzdA==",
        webhook_url="",
    )
    base.update(kw)
    return RealtimeConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def rt(port: int) -> AsyncIterator[RunningRealtime]:
    async with running_realtime(config(port)) as running:
        yield running


async def connected(rt: RunningRealtime, user: str, **claims: Any) -> CentrifugoClient:
    c = CentrifugoClient(rt.ws_url, make_token(user, JWT_SECRET, **claims), timeout_s=5)
    await c.connect()
    return c


async def next_push(c: CentrifugoClient, tf: float, kind: str = "pub") -> Push:
    while True:
        p = await asyncio.wait_for(c.pushes.get(), 5 * tf)
        if p.kind == kind:
            return p


async def test_connect_subscribe_publish_delivers_publication_with_offset(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    sub = await c.subscribe("travel:u1")
    assert sub["recoverable"] and sub["offset"] == 0 and sub["epoch"]
    t0 = time.time_ns()
    await c.publish("travel:u1", {"text": "hello"})
    p = await next_push(c, tf)
    assert p.channel == "travel:u1" and p.data == {"text": "hello"} and p.offset == 1
    assert p.body["info"]["user"] == "u1" and p.t_ns >= t0
    await c.aclose()


async def test_a_publication_holding_a_lone_surrogate_reaches_subscribers_and_more_follow(
    rt: Any, tf: float
) -> None:
    # JSON may spell "\ud800"; the push once killed the subscriber's writer (UnicodeEncodeError)
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    await c.publish("travel:u1", {"text": "\ud800"})
    assert (await next_push(c, tf)).data == {"text": "\ud800"}
    await c.publish("travel:u1", {"text": "after"})
    assert (await next_push(c, tf)).data == {"text": "after"}
    await c.aclose()


async def test_several_commands_in_one_frame_get_all_their_replies(rt: Any, tf: float) -> None:
    async with websockets.connect(rt.ws_url) as ws:
        token = make_token("u1", JWT_SECRET)
        frame = "\n".join(
            json.dumps(x)
            for x in (
                {"id": 1, "connect": {"token": token}},
                {"id": 2, "subscribe": {"channel": "room:a"}},
                {"id": 3, "presence_stats": {"channel": "room:a"}},
            )
        )
        await ws.send(frame)
        got: dict[int, dict] = {}
        while len(got) < 3:
            for line in str(await asyncio.wait_for(ws.recv(), 5 * tf)).split("\n"):
                msg = json.loads(line)
                got[msg["id"]] = msg
        assert "connect" in got[1] and "subscribe" in got[2]
        assert got[3]["presence_stats"] == {"num_clients": 1, "num_users": 1}


async def test_subscribing_to_another_users_channel_is_permission_denied(rt: Any) -> None:
    c = await connected(rt, "u1")
    with pytest.raises(CentrifugoError) as info:
        await c.subscribe("travel:u2")
    assert info.value.code == 103
    with pytest.raises(CentrifugoError) as info:
        await c.publish("secret:x", {"text": "x"})
    assert info.value.code == 103
    assert await c.subscribe("room:lobby") is not None  # the connection survives
    await c.aclose()


async def test_room_claim_in_the_token_limits_rooms(rt: Any) -> None:
    c = await connected(rt, "u1", rooms=["paris"])
    await c.subscribe("room:paris")
    with pytest.raises(CentrifugoError) as info:
        await c.subscribe("room:rome")
    assert info.value.code == 103
    await c.aclose()


async def test_subscribing_twice_is_already_subscribed(rt: Any) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("room:a")
    with pytest.raises(CentrifugoError) as info:
        await c.subscribe("room:a")
    assert info.value.code == 105
    await c.aclose()


async def test_bad_token_is_disconnected_with_invalid_token(rt: Any) -> None:
    c = CentrifugoClient(rt.ws_url, make_token("u1", "another-secret-that-is-long-enough!"))
    with pytest.raises(ConnectionLost) as info:
        await c.connect()
    assert info.value.code == 3500
    await c.aclose()


async def test_expired_token_gets_token_expired_error(rt: Any) -> None:
    c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET, ttl_s=-10))
    with pytest.raises(CentrifugoError) as info:
        await c.connect()
    assert info.value.code == 109
    await c.aclose()


async def test_command_before_connect_ends_the_connection_with_bad_request(
    rt: Any, tf: float
) -> None:
    async with websockets.connect(rt.ws_url) as ws:
        await ws.send('{"id":1,"subscribe":{"channel":"room:a"}}')
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5 * tf)
        assert ws.close_code == 3501


async def test_malformed_commands_get_error_replies_and_the_connection_survives(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    with pytest.raises(CentrifugoError) as info:
        await c.call("subscribe", {"channel": 5})
    assert info.value.code == 107
    with pytest.raises(CentrifugoError) as info:
        await c.call("rpc", {"method": "x"})
    assert info.value.code == 104
    with pytest.raises(CentrifugoError) as info:
        await c.call("publish", {"channel": "room:a"})
    assert info.value.code == 107
    assert (await c.presence_stats("room:a"))["num_clients"] == 0
    await c.aclose()


async def test_invalid_json_disconnects_with_bad_request(rt: Any, tf: float) -> None:
    c = await connected(rt, "u1")
    assert c._ws is not None
    await c._ws.send("{nope")
    with pytest.raises(ConnectionLost) as info:
        for _ in range(100):
            await c.presence_stats("room:a")
            await asyncio.sleep(0.01 * tf)
    assert info.value.code == 3501
    await c.aclose()


async def test_frame_over_size_limit_closes_with_message_too_big(port: int, tf: float) -> None:
    async with running_realtime(config(port, max_frame_bytes=1024)) as rt:
        c = await connected(rt, "u1")
        await c.publish("room:a", {"text": "x" * 500})  # under the limit: fine
        with pytest.raises(ConnectionLost) as info:
            await c.publish("room:a", {"text": "x" * 2000})
        assert info.value.code == 1009
        await c.aclose()


async def test_join_and_leave_pushes_reach_room_members_and_presence_lists_them(
    rt: Any, tf: float
) -> None:
    a = await connected(rt, "alice")
    await a.subscribe("room:lobby")
    b = await connected(rt, "bob")
    await b.subscribe("room:lobby")
    join = await next_push(a, tf, "join")
    assert join.channel == "room:lobby" and join.body["info"]["user"] == "bob"
    presence = await a.presence("room:lobby")
    assert sorted(v["user"] for v in presence.values()) == ["alice", "bob"]
    assert await a.presence_stats("room:lobby") == {"num_clients": 2, "num_users": 2}
    await b.aclose()
    leave = await next_push(a, tf, "leave")
    assert leave.body["info"]["user"] == "bob"
    assert (await a.presence_stats("room:lobby"))["num_clients"] == 1
    await a.aclose()


async def test_history_returns_publications_and_position(rt: Any) -> None:
    c = await connected(rt, "u1")
    for i in range(3):
        await c.publish("room:h", {"n": i})
    h = await c.history("room:h", limit=-1)
    assert [p["data"]["n"] for p in h["publications"]] == [0, 1, 2] and h["offset"] == 3
    h2 = await c.history("room:h", since=(1, h["epoch"]))
    assert [p["offset"] for p in h2["publications"]] == [2, 3]
    await c.aclose()


async def test_resubscribe_after_a_dropped_connection_recovers_missed_publications(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    sub = await c.subscribe("travel:u1")
    await c.aclose()
    other = await connected(rt, "u1")
    for i in range(3):
        await other.publish("travel:u1", {"n": i})
    c2 = await connected(rt, "u1")
    rec = await c2.subscribe("travel:u1", recover_from=(sub["offset"], sub["epoch"]))
    assert rec["recovered"] is True and rec["was_recovering"] is True
    assert [p["data"]["n"] for p in rec["publications"]] == [0, 1, 2]
    await c2.aclose()
    await other.aclose()


async def test_after_restart_with_memory_history_the_epoch_changes_and_nothing_recovers(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    await c.publish("travel:u1", {"n": 1})
    pos = await c.history("travel:u1", limit=0)
    await c.aclose()
    await rt.restart()
    c2 = await connected(rt, "u1")
    rec = await c2.subscribe("travel:u1", recover_from=(pos["offset"], pos["epoch"]))
    assert rec["recovered"] is False and rec["epoch"] != pos["epoch"]
    with pytest.raises(CentrifugoError) as info:  # the SDK's "reject unrecovered" flag
        await c2.call(
            "subscribe",
            {"channel": "room:x", "recover": True, "offset": 1, "epoch": "gone", "flag": 2},
        )
    assert info.value.code == 112
    await c2.aclose()


async def test_after_restart_with_sqlite_history_the_subscriber_recovers(
    port: int, tf: float, tmp_path: Path
) -> None:
    cfg = config(port, history="sqlite", db_path=str(tmp_path / "rt.sqlite"))
    async with running_realtime(cfg) as rt:
        c = await connected(rt, "u1")
        sub = await c.subscribe("travel:u1")
        await c.aclose()
        await rt.restart()
        c2 = await connected(rt, "u1")
        await c2.publish("travel:u1", {"n": 1})
        await c2.publish("travel:u1", {"n": 2})
        await c2.aclose()
        await rt.restart()
        c3 = await connected(rt, "u1")
        rec = await c3.subscribe("travel:u1", recover_from=(sub["offset"], sub["epoch"]))
        assert rec["recovered"] is True and rec["epoch"] == sub["epoch"]
        assert [p["data"]["n"] for p in rec["publications"]] == [1, 2]
        await c3.aclose()


async def test_server_pings_and_client_pongs_keep_the_connection(port: int, tf: float) -> None:
    async with running_realtime(config(port, ping_interval_s=0.1)) as rt:
        c = await connected(rt, "u1")
        for _ in range(100):
            if c.pings >= 3:
                break
            await asyncio.sleep(0.05)
        assert c.pings >= 3 and c.closed is None
        await c.aclose()


async def test_client_that_never_pongs_is_disconnected_with_no_pong(port: int, tf: float) -> None:
    async with running_realtime(config(port, ping_interval_s=0.1)) as rt:
        async with websockets.connect(rt.ws_url) as ws:
            await ws.send(json.dumps({"id": 1, "connect": {"token": make_token("u", JWT_SECRET)}}))
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5 * tf)
            assert ws.close_code == 3012


# --- server HTTP API ---------------------------------------------------------------------------
async def test_api_without_or_with_wrong_key_is_401(rt: Any) -> None:
    async with httpx.AsyncClient(base_url=rt.base_url) as http:
        r = await http.post("/api/publish", json={"channel": "room:a", "data": {}})
        assert r.status_code == 401 and r.json()["error"]["code"] == 101
        r = await http.post("/api/info", json={}, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401
        r = await http.get("/api/ws", headers={"X-API-Key": "wrong"})
        assert r.status_code == 401
        # bytes that are not UTF-8 once made a 500 (UnicodeEncodeError in the key check)
        bad_key = {b"X-API-Key": b"\xff\xfe"}
        r = await http.post("/api/info", json={}, headers=bad_key)
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("publish", b"{not json", 400),
        ("publish", b'{"data":{}}', 400),
        ("publish", b'{"channel":"room:a"}', 400),
        ("publish", b"[1]", 400),
        ("broadcast", b'{"channels":"room:a","data":1}', 400),
        ("nosuch", b"{}", 404),
    ],
)
async def test_malformed_api_bodies_get_4xx_with_a_reason(
    rt: Any, method: Any, body: Any, status: Any
) -> None:
    async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": API_KEY}) as http:
        r = await http.post(f"/api/{method}", content=body)
        assert r.status_code == status
        assert r.json()["error"]["message"]


async def test_api_publish_reaches_subscribers_and_api_reads_presence_history_info(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": API_KEY}) as http:
        r = await http.post("/api/publish", json={"channel": "travel:u1", "data": {"text": "hi"}})
        assert r.status_code == 200 and r.json()["result"]["offset"] == 1
        assert (await next_push(c, tf)).data == {"text": "hi"}
        r = await http.post(
            "/api/broadcast", json={"channels": ["travel:u1", "room:z"], "data": {"b": 1}}
        )
        assert len(r.json()["result"]["responses"]) == 2
        assert (await next_push(c, tf)).data == {"b": 1}
        r = await http.post("/api/presence", json={"channel": "travel:u1"})
        assert [v["user"] for v in r.json()["result"]["presence"].values()] == ["u1"]
        r = await http.post("/api/history", json={"channel": "travel:u1", "limit": -1})
        assert len(r.json()["result"]["publications"]) == 2
        info = (await http.post("/api/info", json={})).json()["result"]["nodes"][0]
        assert info["num_clients"] == 1 and info["api_publications"] == 3
        health = (await http.get("/healthz")).json()
        assert health["ok"] is True and health["num_clients"] == 1
    await c.aclose()


async def test_stamped_api_publication_reaches_subscriber_with_publish_and_deliver(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    trace = Trace.start("m1")
    trace.stamp("worker.publish", "worker")
    data = {"type": "agent_response", "text": "ok", "trace": trace.to_wire()}
    async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": API_KEY}) as http:
        await http.post("/api/publish", json={"channel": "travel:u1", "data": data})
    p = await next_push(c, tf)
    got = Trace.from_wire(p.data["trace"])
    names = [(n, proc) for n, _, proc in got.stamps]
    assert names == [
        ("worker.publish", "worker"),
        ("realtime.publish", "realtime"),
        ("realtime.deliver", "realtime"),
    ]
    times = [t for _, t, _ in got.stamps]
    assert times == sorted(times) and times[-1] <= p.t_ns
    await c.aclose()


async def test_publication_data_without_a_trace_passes_through_untouched(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": API_KEY}) as http:
        for data in ({"text": "x"}, [1, 2], "s", {"trace": "malformed"}):
            await http.post("/api/publish", json={"channel": "travel:u1", "data": data})
            assert (await next_push(c, tf)).data == data
    await c.aclose()


async def test_client_publication_is_stamped_on_receipt_and_a_full_trace_passes_unstamped(
    rt: Any, tf: float
) -> None:
    c = await connected(rt, "u1")
    await c.subscribe("travel:u1")
    trace = Trace.start("m1")
    t_send = trace.stamp("client.send", "client")
    await c.publish("travel:u1", {"text": "x", "trace": trace.to_wire()})
    got = Trace.from_wire((await next_push(c, tf)).data["trace"])
    assert [(n, p) for n, _, p in got.stamps] == [
        ("client.send", "client"),
        ("realtime.recv", "realtime"),
    ]
    assert got.stamps[1][1] >= t_send
    full = Trace.start("m2")
    for i in range(256):
        full.stamp("client.send", "client", t_ns=i)
    await c.publish("travel:u1", {"text": "y", "trace": full.to_wire()})
    assert len((await next_push(c, tf)).data["trace"]["stamps"]) == 256
    await c.aclose()


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 32503680000},  # the year 3000
        {"rooms": "paris"},  # not a list: must not open every room
        {"rooms": [1, 2]},
        {"sub": "a/b"},
    ],
    ids=["exp-year-3000", "rooms-string", "rooms-numbers", "sub-with-slash"],
)
async def test_tokens_that_break_the_rules_are_disconnected_and_counted(
    rt: Any, claims: Any
) -> None:
    import jwt

    body = {"sub": "u1", "exp": int(time.time()) + 60, **claims}
    c = CentrifugoClient(rt.ws_url, jwt.encode(body, JWT_SECRET, algorithm="HS256"))
    with pytest.raises(ConnectionLost) as info:
        await c.connect()
    assert info.value.code == 3500
    await c.aclose()
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{rt.base_url}/healthz")).json()
    assert health["refused_tokens"] >= 1


async def test_a_token_without_exp_is_disconnected(rt: Any) -> None:
    import jwt

    c = CentrifugoClient(rt.ws_url, jwt.encode({"sub": "u1"}, JWT_SECRET, algorithm="HS256"))
    with pytest.raises(ConnectionLost) as info:
        await c.connect()
    assert info.value.code == 3500
    await c.aclose()


async def test_a_foreign_issuer_is_refused_when_an_issuer_is_configured(port: int) -> None:
    async with running_realtime(config(port, jwt_issuer="travelagent")) as rt:
        bad = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET, iss="evil"))
        with pytest.raises(ConnectionLost) as info:
            await bad.connect()
        assert info.value.code == 3500
        await bad.aclose()
        good = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET, iss="travelagent"))
        await good.connect()
        await good.aclose()


async def test_sockets_that_never_connect_are_closed_at_the_deadline_and_counted(
    port: int, tf: float
) -> None:
    async with running_realtime(config(port, connect_timeout_s=0.3)) as rt:
        idle = [await websockets.connect(rt.ws_url) for _ in range(5)]
        for ws in idle:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5 * tf)
            assert info.value.rcvd is not None and info.value.rcvd.code == 3502
        # A client that connects in time is not touched by the deadline.
        c = await connected(rt, "u1")
        await asyncio.sleep(0.5)
        assert await c.subscribe("travel:u1") is not None
        await c.aclose()
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{rt.base_url}/healthz")).json()
    assert health["connect_timeouts"] == 5


async def test_connections_per_address_are_capped_and_each_refusal_counted(port: int) -> None:
    async with running_realtime(config(port, max_connections_per_address=3)) as rt:
        held = [await websockets.connect(rt.ws_url) for _ in range(3)]
        for _ in range(2):
            with pytest.raises(websockets.InvalidStatus) as info:
                await websockets.connect(rt.ws_url)
            assert info.value.response.status_code == 429
        await held[0].close()
        await asyncio.sleep(0.1)
        again = await websockets.connect(rt.ws_url)  # a slot freed is a slot again
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{rt.base_url}/healthz")).json()
        for ws in (*held[1:], again):
            await ws.close()
    assert health["refused_per_address"] == 2


async def test_a_connection_that_never_finishes_its_headers_is_closed(port: int, tf: float) -> None:
    async with running_realtime(config(port, keepalive_timeout_s=0.5)) as rt:
        half_open = []
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", rt.config.port)
            writer.write(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: web")
            await writer.drain()
            half_open.append((reader, writer))
        t0 = time.monotonic()
        for reader, writer in half_open:
            assert await asyncio.wait_for(reader.read(), 5 * tf) == b""  # closed by the server
            writer.close()
        assert time.monotonic() - t0 < 3 * tf


async def test_connections_per_user_are_capped_released_and_each_refusal_counted(
    port: int,
) -> None:
    # One address, many users: the address cap is far off, the user cap is what refuses.
    async with running_realtime(config(port, max_connections_per_user=2)) as rt:
        held = [await connected(rt, "u1") for _ in range(2)]
        other = await connected(rt, "u2")  # another user is not affected
        for _ in range(2):
            c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET), timeout_s=5)
            with pytest.raises(ConnectionLost) as info:
                await c.connect()
            assert info.value.code == 3504
            await c.aclose()
        await held[0].aclose()
        await asyncio.sleep(0.1)
        again = await connected(rt, "u1")  # the slot of the closed session is free again
        assert await again.subscribe("travel:u1") is not None
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{rt.base_url}/healthz")).json()
        for c in (held[1], other, again):
            await c.aclose()
    assert health["refused_per_user"] == 2 and health["num_clients"] == 3
