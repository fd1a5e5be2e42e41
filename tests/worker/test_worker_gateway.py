from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from worker_helpers import connect, recv_reply, running_worker

from travelagent.wire.trace import GATEWAY_PATH, MAX_STAMPS, Trace


async def test_original_client_frame_gets_a_useful_streamed_response_with_trace(
    port: int, tmp_path: Path
) -> None:
    async with running_worker(port, tmp_path / "a.db"), connect(port, "userId=u1") as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "message",
                    "text": "flights from London to Tokyo on 2026-12-10",
                    "userId": "u1",
                }
            )
        )
        frames = await recv_reply(ws)
    assert all(f["type"] == "response" for f in frames)
    assert frames[0].get("streaming") is True
    chunks = [f["text"] for f in frames if f.get("chunk")]
    final = frames[-1]
    assert final.get("complete") is True and final["userId"] == "u1"
    assert "".join(chunks) == final["text"]
    assert "Tokyo" in final["text"] and "London" in final["text"]
    names = [s[0] for s in final["trace"]["stamps"]]
    assert names == ["worker.recv", "agent.start", "llm.first", "llm.done", "agent.done",
                     "worker.send"]  # fmt: skip


async def test_non_streamed_reply_is_one_response_frame(port: int, tmp_path: Path) -> None:
    async with running_worker(port, tmp_path / "a.db", stream=False), connect(port) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hotels in Paris"}))
        frames = await recv_reply(ws)
    assert len(frames) == 1
    assert frames[0]["type"] == "response" and "Paris" in frames[0]["text"]
    assert not frames[0].get("complete")


async def test_client_trace_is_carried_back_with_every_stamp_in_path_order(
    port: int, tmp_path: Path
) -> None:
    tr = Trace.start("m-1")
    tr.stamp("client.send", "client")
    async with running_worker(port, tmp_path / "a.db"), connect(port) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hi", "trace": tr.to_wire()}))
        final = (await recv_reply(ws))[-1]
    back = Trace.from_wire(final["trace"])
    assert final["id"] == "m-1" and back.id == "m-1"
    names = [s[0] for s in back.stamps]
    assert names == [n for n in GATEWAY_PATH if n in names]
    assert names[0] == "client.send" and names[-1] == "worker.send"
    times = [s[1] for s in back.stamps]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "invalid JSON"),
        ('{"type":"message"}', "'text'"),
        ('{"type":"message","text":""}', "'text'"),
        ('{"type":"subscribe","text":"x"}', "unknown type"),
        (b"\x00\x01binary", "binary"),
    ],
)
async def test_bad_input_gets_an_error_frame_and_the_socket_stays_usable(
    port: int, tmp_path: Path, frame: Any, reason: Any
) -> None:
    async with running_worker(port, tmp_path / "a.db", max_frame_bytes=4096), connect(port) as ws:
        await ws.send(frame)
        err = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert err["type"] == "response" and reason in err["error"]
        await ws.send(json.dumps({"type": "message", "text": "show my itinerary"}))
        final = (await recv_reply(ws))[-1]
        assert final.get("complete") and final["text"]


@pytest.mark.parametrize("size", [1025, 1024 * 64])
async def test_a_frame_over_the_limit_closes_with_message_too_big(
    port: int, tmp_path: Path, size: Any
) -> None:
    # The hard cap is the limit: a frame one byte over is never read into memory.
    async with running_worker(port, tmp_path / "a.db", max_frame_bytes=1024), connect(port) as ws:
        await ws.send("x" * size)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_a_frame_exactly_at_the_limit_is_served(port: int, tmp_path: Path) -> None:
    head = json.dumps({"type": "message", "text": ""})
    frame = json.dumps({"type": "message", "text": "y" * (1024 - len(head))})
    assert len(frame) == 1024
    async with running_worker(port, tmp_path / "a.db", max_frame_bytes=1024), connect(port) as ws:
        await ws.send(frame)
        final = (await recv_reply(ws))[-1]
    assert final["userId"] == "u1" and "error" not in final


async def test_user_id_may_come_from_the_first_message_and_then_binds_the_socket(
    port: int, tmp_path: Path
) -> None:
    async with running_worker(port, tmp_path / "a.db"), connect(port, "") as ws:
        await ws.send(json.dumps({"type": "message", "text": "hi"}))
        assert "userId required" in json.loads(await ws.recv())["error"]
        await ws.send(json.dumps({"type": "message", "text": "hi", "userId": "bob"}))
        assert (await recv_reply(ws))[-1]["userId"] == "bob"
        await ws.send(json.dumps({"type": "message", "text": "hi", "userId": "eve"}))
        assert "bound to userId 'bob'" in json.loads(await ws.recv())["error"]


async def test_bad_user_id_in_the_query_is_refused_before_upgrade(
    port: int, tmp_path: Path
) -> None:
    async with running_worker(port, tmp_path / "a.db"):
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(port, "userId=a/b"):
                pass
    assert info.value.response.status_code == 400


async def test_many_clients_on_many_agents_all_get_their_own_replies(
    port: int, tmp_path: Path
) -> None:
    async def client(i: int) -> list[str]:
        async with connect(port, f"userId=user{i}") as ws:
            out = []
            for k in range(3):
                await ws.send(json.dumps({"type": "message", "text": f"hotels in Paris {k}",
                                          "id": f"{i}-{k}"}))  # fmt: skip
                final = (await recv_reply(ws))[-1]
                assert final["userId"] == f"user{i}"
                out.append(final["id"])
            return out

    async with running_worker(port, tmp_path / "a.db"):
        results = await asyncio.gather(*(client(i) for i in range(40)))
    assert results == [[f"{i}-{k}" for k in range(3)] for i in range(40)]


async def test_one_agent_handles_messages_one_at_a_time_in_arrival_order(
    port: int, tmp_path: Path
) -> None:
    """Twenty messages pipelined on one socket, and five sockets on the same agent: the agent's
    start/done intervals never overlap and one socket's messages run in the order sent."""
    async with running_worker(port, tmp_path / "a.db", profile="note"):
        async with connect(port, "userId=shared") as ws:
            for k in range(20):
                await ws.send(json.dumps({"type": "message", "text": f"hotels in Rome {k}",
                                          "id": f"m{k:02d}"}))  # fmt: skip
            finals: list[Any] = []
            while len(finals) < 20:
                f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if not (f.get("streaming") or f.get("chunk")):
                    finals.append(f)
    assert [f["id"] for f in finals] == [f"m{k:02d}" for k in range(20)]
    spans = []
    for f in finals:
        st = {s[0]: s[1] for s in f["trace"]["stamps"]}
        spans.append((st["agent.start"], st["agent.done"]))
    for (s1, d1), (s2, _) in itertools.pairwise(spans):
        assert s1 <= d1 <= s2


async def test_state_survives_a_worker_restart(port: int, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    async with running_worker(port, db), connect(port, "userId=traveller") as ws:
        await ws.send(
            json.dumps({"type": "message", "text": "add a day trip to Kyoto to my itinerary"})
        )
        await recv_reply(ws)
    async with running_worker(port, db), connect(port, "userId=traveller") as ws:
        await ws.send(json.dumps({"type": "message", "text": "show my itinerary"}))
        final = (await recv_reply(ws))[-1]
    assert "Kyoto" in final["text"]


async def test_healthz_reports_ok(port: int, tmp_path: Path) -> None:
    import httpx

    async with running_worker(port, tmp_path / "a.db"):
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{port}/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_a_client_trace_already_full_gets_its_reply_and_the_socket_keeps_working(
    port: int, tmp_path: Path
) -> None:
    full = Trace.start("m-full")
    for i in range(MAX_STAMPS):
        full.stamp("client.send", "client", t_ns=i)
    async with running_worker(port, tmp_path / "a.db"), connect(port) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hi", "trace": full.to_wire()}))
        final = (await recv_reply(ws))[-1]
        assert final["id"] == "m-full" and "error" not in final
        assert len(final["trace"]["stamps"]) == MAX_STAMPS
        await ws.send(json.dumps({"type": "message", "text": "show my itinerary"}))
        again = (await recv_reply(ws))[-1]
    assert again["type"] == "response" and "error" not in again


async def test_the_gateway_declines_permessage_deflate_and_still_answers(
    port: int, tmp_path: Path
) -> None:
    # websockets offers permessage-deflate by default; the gateway, like the realtime service,
    # does not take it: frames of a few hundred bytes go uncompressed.
    async with running_worker(port, tmp_path / "a.db", stream=False), connect(port) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send(json.dumps({"type": "message", "text": "hotels in Paris"}))
        frames = await recv_reply(ws)
    assert "Paris" in frames[0]["text"]
