"""The realtime client reconnects by itself with Centrifugo recovery, over real sockets: a
restart of the realtime service (SQLite history) in the middle of a streamed reply ends with
the reply once; what was cut off and never recovered ends ``lost``, not ``timeout``; and
``reconnect()`` never says recovered for a reply it did not deliver."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import free_port
from worker_helpers import GatedLLM, running_worker

from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.client.sync_realtime import RealtimeClient
from travelagent.config import JWT_SECRET_ENV, secret
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import RunningRealtime, running_realtime

T = TypeVar("T")

FAST_RETRIES = (0.05, 0.1, 0.2) + (0.4,) * 16


def realtime_config(rt_port: int, w_port: int, tmp_path: Path, **kw: Any) -> RealtimeConfig:
    return RealtimeConfig.from_env(
        port=rt_port,
        webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook",
        webhook_retry_schedule_s=FAST_RETRIES,
        **kw,
    )


async def until(done: Any, tf: float) -> None:
    for _ in range(int(500 * tf)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


def finals(history: dict[str, Any], msg_id: str) -> int:
    return sum(
        1
        for p in history.get("publications", [])
        if isinstance(p.get("data"), dict)
        and p["data"].get("type") == "agent_response"
        and p["data"].get("id") == msg_id
        and p["data"].get("complete")
    )


async def test_a_restart_mid_stream_with_sqlite_history_delivers_the_reply_once(
    tmp_path: Path, tf: float
) -> None:
    rt_port, w_port = free_port(), free_port()
    cfg = realtime_config(
        rt_port, w_port, tmp_path, history="sqlite", db_path=str(tmp_path / "rt.sqlite"),
        webhook_outbox_path=str(tmp_path / "outbox.sqlite"),
    )  # fmt: skip
    llm = GatedLLM()
    async with (
        running_realtime(cfg) as rt,
        running_worker(
            w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=True,
            publish="http-new",
        ),
    ):  # fmt: skip
        client = AsyncRealtimeClient(
            rt.ws_url, "u1", jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=15 * tf
        )
        async with client:
            first = await client.request("hotels in Paris")
            llm.hold = True
            cut = await client.send("hotels in Rome")
            await until(lambda: cut.record.chunks >= 1, tf)
            await rt.restart()  # every socket closes; history and outbox are on disk
            await until(lambda: client.reconnects >= 1, tf)
            llm.gate.set()
            rec = await client.wait(cut)
            await asyncio.sleep(0.3 * tf)  # a second final, if any, would land by now
            history = await client.centrifugo.history("travel:u1", limit=-1)
    assert first.status == "ok"
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 2 begins. Reply 2 ends."
    assert finals(history, cut.record.msg_id) == 1
    assert llm.runs == 2  # the redelivered webhook joined the turn under way


async def test_a_reply_that_never_comes_after_a_cut_is_lost_not_timeout(
    tmp_path: Path, tf: float
) -> None:
    """No worker behind the realtime service: no reply ever. Without a drop that is a
    timeout; cut off by a restart (memory history: nothing to recover) it is lost."""
    cfg = realtime_config(free_port(), free_port(), tmp_path)
    async with running_realtime(cfg) as rt:
        client = AsyncRealtimeClient(
            rt.ws_url, "u2", jwt_secret=secret(JWT_SECRET_ENV), timeout_s=1.0 * tf
        )
        async with client:
            waited = await client.request("hotels in Paris")
            cut = await client.send("hotels in Rome")
            await rt.restart()
            rec = await client.wait(cut)
            reconnects = client.reconnects
    assert waited.status == "timeout"
    assert rec.status == "lost" and "not recovered" in rec.error
    assert reconnects == 1


async def test_giving_up_reconnecting_ends_what_was_cut_off_as_lost(
    tmp_path: Path, tf: float
) -> None:
    cfg = realtime_config(free_port(), free_port(), tmp_path)
    async with running_realtime(cfg) as rt:
        client = AsyncRealtimeClient(
            rt.ws_url, "u3", jwt_secret=secret(JWT_SECRET_ENV), timeout_s=10 * tf,
            max_reconnects=2,
        )  # fmt: skip
        await client.connect()
        cut = await client.send("hotels in Rome")
        await rt.stop()
        rec = await client.wait(cut)
        await rt.start()
        again = await client.send("hotels in Oslo")  # starts afresh (no worker: no reply)
        history = await client.centrifugo.history("travel:u3", limit=-1)
        await client.close()
    assert rec.status == "lost" and "2 reconnects failed" in rec.error
    published = [p["data"].get("id") for p in history["publications"]]
    assert published[-1] == again.record.msg_id
    assert again.record.status == "stopped"  # still waiting when the client was closed


async def test_reconnect_says_recovered_only_when_the_reply_was_delivered(
    tmp_path: Path, tf: float
) -> None:
    rt_port, w_port = free_port(), free_port()
    llm = GatedLLM()
    llm.hold = True
    async with (
        running_realtime(realtime_config(rt_port, w_port, tmp_path)) as rt,
        running_worker(w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=False),
    ):
        client = AsyncRealtimeClient(
            rt.ws_url, "u4", jwt_secret=secret(JWT_SECRET_ENV), timeout_s=10 * tf,
            auto_reconnect=False,
        )  # fmt: skip
        async with client:
            pending = await client.send("hotels in Rome")
            await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
            await client.centrifugo.aclose()
            not_yet = await client.reconnect()  # the stream has no gap, but no reply either
            llm.gate.set()
            rec = await client.wait(pending)
            again = await client.send("hotels in Oslo")
            await client.centrifugo.aclose()
            await asyncio.sleep(0.3 * tf)  # the reply is published while the client is away
            delivered = await client.reconnect()
            second = await client.wait(again)
    assert not_yet is False
    assert rec.status == "ok" and rec.reply == "Reply 1 begins. Reply 1 ends."
    assert delivered is True and second.status == "ok"
    assert second.reply == "Reply 2 begins. Reply 2 ends."


class LoopThread:
    """An event loop in a thread of its own, for servers a blocking (gevent-style) client
    talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def test_the_sync_client_reconnects_by_itself_across_a_restart_mid_stream(
    loop_thread: LoopThread, tmp_path: Path, tf: float
) -> None:
    rt_port, w_port = free_port(), free_port()
    cfg = realtime_config(
        rt_port, w_port, tmp_path, history="sqlite", db_path=str(tmp_path / "rt.sqlite"),
        webhook_outbox_path=str(tmp_path / "outbox.sqlite"),
    )  # fmt: skip
    stack = contextlib.AsyncExitStack()
    llm = GatedLLM()

    async def start() -> RunningRealtime:
        llm.gate, llm.first_sent = asyncio.Event(), asyncio.Event()
        rt = await stack.enter_async_context(running_realtime(cfg))
        worker = running_worker(
            w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=True,
            publish="http-new",
        )  # fmt: skip
        await stack.enter_async_context(worker)
        return rt

    rt = loop_thread.call(start())
    try:
        client = RealtimeClient(
            rt.ws_url, "u5", jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=15 * tf
        )
        first = client.request("hotels in Paris")
        llm.hold = True
        cut = client.send("hotels in Rome")
        for _ in range(int(500 * tf)):
            if cut.record.chunks >= 1:
                break
            client.pump(0.01)
        loop_thread.call(rt.restart())
        loop_thread.loop.call_soon_threadsafe(llm.gate.set)
        rec = client.wait(cut)
        client.close()
    finally:
        loop_thread.call(stack.aclose())
    assert first.status == "ok"
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 2 begins. Reply 2 ends."
    assert client.reconnects == 1
    assert llm.runs == 2


def test_the_sync_client_says_lost_for_a_reply_cut_off_and_never_recovered(
    loop_thread: LoopThread, tmp_path: Path, tf: float
) -> None:
    cfg = realtime_config(free_port(), free_port(), tmp_path)
    rt = RunningRealtime(cfg)
    loop_thread.call(rt.start())
    try:
        client = RealtimeClient(rt.ws_url, "u6", jwt_secret=secret(JWT_SECRET_ENV), timeout_s=tf)
        waited = client.request("hotels in Paris")
        cut = client.send("hotels in Rome")
        loop_thread.call(rt.restart())
        rec = client.wait(cut)
        client.close()
    finally:
        loop_thread.call(rt.stop())
    assert waited.status == "timeout"
    assert rec.status == "lost" and "not recovered" in rec.error
    assert client.reconnects == 1


def test_the_sync_client_waits_out_a_slow_restart_until_the_deadline(
    loop_thread: LoopThread, tmp_path: Path, tf: float
) -> None:
    """Down 7 s: more than eight doubling attempts (about 6.4 s) would have waited."""
    rt_port, w_port = free_port(), free_port()
    cfg = realtime_config(
        rt_port, w_port, tmp_path, history="sqlite", db_path=str(tmp_path / "rt.sqlite"),
        webhook_outbox_path=str(tmp_path / "outbox.sqlite"),
    )  # fmt: skip
    stack = contextlib.AsyncExitStack()
    llm = GatedLLM()

    async def start() -> RunningRealtime:
        llm.gate, llm.first_sent = asyncio.Event(), asyncio.Event()
        rt = await stack.enter_async_context(running_realtime(cfg))
        worker = running_worker(
            w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=True,
            publish="http-new",
        )  # fmt: skip
        await stack.enter_async_context(worker)
        return rt

    async def down_for(rt: RunningRealtime, s: float) -> None:
        await rt.stop()
        await asyncio.sleep(s)
        await rt.start()
        llm.gate.set()

    rt = loop_thread.call(start())
    try:
        client = RealtimeClient(
            rt.ws_url, "u7", jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=12 * tf
        )
        llm.hold = True
        cut = client.send("hotels in Rome")
        for _ in range(int(500 * tf)):
            if cut.record.chunks >= 1:
                break
            client.pump(0.01)
        outage = asyncio.run_coroutine_threadsafe(down_for(rt, 7.0), loop_thread.loop)
        rec = client.wait(cut)
        outage.result(20)
        client.close()
    finally:
        loop_thread.call(stack.aclose())
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 1 begins. Reply 1 ends."
