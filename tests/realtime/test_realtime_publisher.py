"""The persistent publisher socket (``/api/ws``) and its client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
import websockets.asyncio.server

from travelagent.client.centrifugo import CentrifugoClient, make_token
from travelagent.client.publisher import (
    PublisherClient,
    PublisherDisconnected,
    PublisherError,
)
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import Trace

JWT_SECRET = "publisher-test-jwt-secret-long-enough!"
API_KEY = "publisher-test-api-key"


def config(port: int) -> RealtimeConfig:
    return RealtimeConfig(port=port, jwt_secret=JWT_SECRET, api_key=API_KEY, webhook_url="")


async def test_pipelined_publishes_all_succeed_in_order_on_one_socket(port: int, tf: float) -> None:
    async with running_realtime(config(port)) as rt:
        sub = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await sub.connect()
        await sub.subscribe("travel:u1")
        pub = PublisherClient(rt.publisher_url, API_KEY)
        await pub.connect()
        results = await asyncio.gather(*(pub.publish("travel:u1", {"n": i}) for i in range(200)))
        assert sorted(r["offset"] for r in results) == list(range(1, 201))
        got = [(await asyncio.wait_for(sub.pushes.get(), 5 * tf)).data["n"] for _ in range(200)]
        assert got == list(range(200))
        assert rt.service.stats()["publisher_sockets"] == 1
        await pub.aclose()
        await sub.aclose()


async def test_stamped_publication_through_the_socket_carries_publish_and_deliver(
    port: int, tf: float
) -> None:
    async with running_realtime(config(port)) as rt:
        sub = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await sub.connect()
        await sub.subscribe("travel:u1")
        pub = PublisherClient(rt.base_url, API_KEY)  # the base URL works too
        await pub.connect()
        trace = Trace.start()
        trace.stamp("worker.publish", "worker")
        await pub.publish("travel:u1", {"text": "x", "trace": trace.to_wire()})
        push = await asyncio.wait_for(sub.pushes.get(), 5 * tf)
        names = [n for n, _, _ in Trace.from_wire(push.data["trace"]).stamps]
        assert names == ["worker.publish", "realtime.publish", "realtime.deliver"]
        await pub.aclose()
        await sub.aclose()


async def test_errors_come_back_per_command(port: int) -> None:
    async with running_realtime(config(port)) as rt:
        pub = PublisherClient(rt.publisher_url, API_KEY)
        await pub.connect()
        with pytest.raises(PublisherError) as info:
            await pub.call("nosuch", {})
        assert info.value.code == 104
        with pytest.raises(PublisherError) as info:
            await pub.call("publish", {"channel": "room:a"})
        assert info.value.code == 107
        assert (await pub.call("info", {}))["nodes"][0]["publisher_sockets"] == 1
        await pub.aclose()


async def test_raw_socket_gets_an_error_for_a_line_that_is_not_json(port: int, tf: float) -> None:
    async with running_realtime(config(port)) as rt:
        headers = {"X-API-Key": API_KEY}
        async with websockets.connect(rt.publisher_url, additional_headers=headers) as ws:
            await ws.send('nope\n{"id":2,"method":"publish","params":{"channel":"a","data":1}}')
            replies = [json.loads(x) for x in str(await ws.recv()).split("\n")]
            assert replies[0]["id"] == 0 and replies[0]["error"]["code"] == 107
            assert replies[1] == {"id": 2, "result": {}}


async def test_wrong_key_is_refused_before_the_upgrade(port: int) -> None:
    async with running_realtime(config(port)) as rt:
        with pytest.raises(websockets.InvalidStatus) as info:
            await PublisherClient(rt.publisher_url, "wrong").connect()
        assert info.value.response.status_code == 401


async def test_client_reconnects_after_the_server_restarts(port: int, tf: float) -> None:
    async with running_realtime(config(port)) as rt:
        pub = PublisherClient(rt.publisher_url, API_KEY, backoff_initial_s=0.02, timeout_s=5 * tf)
        await pub.connect()
        assert (await pub.publish("room:a", 1))["offset"] == 1
        await rt.restart()
        for _ in range(int(500 * tf)):
            if pub.reconnects:
                break
            await asyncio.sleep(0.01)
        assert pub.reconnects == 1
        result = await pub.publish("room:a", 2)
        assert result["offset"] == 1  # a new service: memory history started a new epoch
        await pub.aclose()


async def test_calls_fail_clearly_while_the_server_stays_down(port: int, tf: float) -> None:
    async with running_realtime(config(port)) as rt:
        pub = PublisherClient(rt.publisher_url, API_KEY, backoff_initial_s=0.02, timeout_s=0.3)
        await pub.connect()
        await rt.stop()
        with pytest.raises(PublisherDisconnected):
            for _ in range(50):
                await pub.publish("room:a", 1)
        await pub.aclose()


async def test_a_socket_that_goes_silent_is_dropped_by_keepalive_and_reconnected(
    port: int, tf: float
) -> None:
    from travelagent.link.faults import Faults
    from travelagent.link.proxy import Link
    from travelagent.link.schedule import LinkShape

    async with running_realtime(config(port)):
        link = Link(
            "worker_realtime",
            listen_host="127.0.0.1",
            listen_port=0,
            upstream_host="127.0.0.1",
            upstream_port=port,
            shape=LinkShape(setup_rtts=0),
        )
        await link.start()
        pub = PublisherClient(
            f"ws://127.0.0.1:{link.listen_port}",
            API_KEY,
            ping_interval_s=0.2,
            ping_timeout_s=0.3,
            backoff_initial_s=0.05,
            timeout_s=10 * tf,
        )
        try:
            await pub.connect()
            await pub.publish("travel:u1", {"n": 1})
            # The path stops delivering for longer than the keep-alive allows, no bytes lost.
            await link.set_faults(Faults(blackhole=True, blackhole_rto_ms=0))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5 * tf
            for _ in range(int(250 * tf)):
                if pub._ws is None or loop.time() > deadline:
                    break
                await asyncio.sleep(0.02)
            assert pub._ws is None, "a silent socket was not dropped"
            await link.set_faults(Faults())
            result = await asyncio.wait_for(pub.publish("travel:u1", {"n": 2}), 10 * tf)
            assert result["offset"] == 2
            assert pub.reconnects >= 1
        finally:
            await pub.aclose()
            await link.stop()


async def recording_server(port: int, frames: list[str]) -> websockets.asyncio.server.Server:
    """A publisher-socket stand-in: records each frame, answers every line of it at once."""

    async def serve(ws: websockets.asyncio.server.ServerConnection) -> None:
        async for frame in ws:
            text = str(frame)
            frames.append(text)
            ids = [json.loads(line)["id"] for line in text.split("\n")]
            await ws.send("\n".join(json.dumps({"id": i, "result": {"n": i}}) for i in ids))

    return await websockets.asyncio.server.serve(serve, "127.0.0.1", port)


async def test_the_commands_of_one_pass_of_the_loop_go_out_in_one_frame(port: int) -> None:
    frames: list[str] = []
    server = await recording_server(port, frames)
    pub = PublisherClient(f"ws://127.0.0.1:{port}", API_KEY)
    try:
        await pub.connect()
        results = await asyncio.gather(*(pub.publish("travel:u1", {"n": i}) for i in range(5)))
        assert [r["n"] for r in results] == [1, 2, 3, 4, 5]  # each call got its own reply
        assert len(frames) == 1 and len(frames[0].split("\n")) == 5
        await pub.publish("travel:u1", 6)  # alone, then: a frame of its own
        assert len(frames) == 2 and len(frames[1].split("\n")) == 1
    finally:
        await pub.aclose()
        server.close()
        await server.wait_closed()


async def test_a_batch_over_the_frame_bound_is_split_in_order(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from travelagent.client import publisher

    monkeypatch.setattr(publisher, "MAX_FRAME_CHARS", 300)
    frames: list[str] = []
    server = await recording_server(port, frames)
    pub = PublisherClient(f"ws://127.0.0.1:{port}", API_KEY)
    try:
        await pub.connect()
        calls = [pub.publish("travel:u1", {"pad": "x" * 100, "n": i}) for i in range(6)]
        await asyncio.gather(*calls)
        lines = [line for f in frames for line in f.split("\n")]
        assert [json.loads(line)["params"]["data"]["n"] for line in lines] == list(range(6))
        assert len(frames) > 1 and all(len(f) <= 300 for f in frames)
    finally:
        await pub.aclose()
        server.close()
        await server.wait_closed()
