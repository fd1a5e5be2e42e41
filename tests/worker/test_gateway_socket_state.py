"""The small per-socket pieces of the gateway: the query read without caching, the writer,
and what an idle socket keeps of its last message (nothing)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from worker_helpers import connect, recv_reply, running_worker

from travelagent.worker.gateway import SocketSink, SocketWriter, _query
from travelagent.worker.gateway_session import Accept


@pytest.mark.parametrize(
    "qs",
    [
        "userId=u1",
        "userId=u1&room=lobby&resumeAfter=m-3",
        "userId=a+b&room=%F0%9F%8C%8D&token=x.y.z",
        "userId=first&userId=second",
        "userId=&room",
        "",
    ],
)
def test_the_query_is_what_request_query_has_first_value_of_each_name(qs: str) -> None:
    request = make_mocked_request("GET", f"/api/gateway/ws?{qs}" if qs else "/api/gateway/ws")
    mine = _query(request)
    expected = {name: request.query.getone(name) for name in request.query}
    assert mine == expected


class FakeWs:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False
        self.writing = False

    async def send_str(self, frame: str) -> None:
        assert not self.writing, "two sends at once"
        self.writing = True
        await asyncio.sleep(0.001)
        self.sent.append(frame)
        self.writing = False


async def test_the_writer_sends_one_frame_at_a_time_and_makes_its_lock_on_first_use() -> None:
    ws = FakeWs()
    writer = SocketWriter(ws)  # type: ignore[arg-type]
    assert writer._lock is None  # an idle socket holds no lock
    await asyncio.gather(*(writer.send(f"f{i}") for i in range(5)))
    assert ws.sent == [f"f{i}" for i in range(5)]
    assert writer._lock is not None


async def test_the_writer_swallows_a_gone_client() -> None:
    class Gone(FakeWs):
        async def send_str(self, frame: str) -> None:
            raise ConnectionResetError

    writer = SocketWriter(Gone())  # type: ignore[arg-type]
    await writer.send("x")  # no error


async def test_an_idle_socket_keeps_nothing_of_its_last_message(port: int, tmp_path: Path) -> None:
    def left() -> list[object]:
        gc.collect()
        return [o for o in gc.get_objects() if isinstance(o, SocketSink | Accept)]

    async with running_worker(port, tmp_path / "a.db", stream=False), connect(port) as ws:
        await ws.send(json.dumps({"type": "message", "text": "hotels in Paris"}))
        assert "Paris" in (await recv_reply(ws))[-1]["text"]
        for _ in range(200):  # the turn's task ends just after its reply went out
            if not left():
                break
            await asyncio.sleep(0.01)
        assert left() == []
        # The socket is still served.
        await ws.send(json.dumps({"type": "message", "text": "hotels in Rome"}))
        assert "Rome" in (await recv_reply(ws))[-1]["text"]
