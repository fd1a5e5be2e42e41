"""The gateway clients reconnect and resume over real sockets: a socket reset mid-reply (by a
link's fault API) ends with the reply once, by replay or by a resend joining the run; a message
the worker never got ends ``lost`` only when the worker says so; giving up is an ``error``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import free_port
from worker_helpers import GatedLLM, running_worker

from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.records import MessageRecord
from travelagent.client.sync_gateway import GatewayClient
from travelagent.link.faults import Faults
from travelagent.link.proxy import Link
from travelagent.link.schedule import LinkShape

T = TypeVar("T")


class Served:
    """A worker behind a link, on an event loop of its own thread (the sync client blocks)."""

    def __init__(self, db: Path) -> None:
        self.llm = GatedLLM()
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.link: Link | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(db),))
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("worker did not start")

    async def _main(self, db: Path) -> None:
        self._stop = asyncio.Event()
        self.llm.gate = asyncio.Event()
        self.llm.first_sent = asyncio.Event()
        async with running_worker(self.port, db, llm=self.llm):
            self.link = await start_link(self.port)
            self._ready.set()
            await self._stop.wait()
            await self.link.stop()

    @property
    def url(self) -> str:
        assert self.link is not None
        return f"http://127.0.0.1:{self.link.listen_port}"

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)

    def faults(self, faults: Faults) -> None:
        assert self.link is not None
        link = self.link
        self.call(lambda: link.set_faults(faults))

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.llm.gate.set)

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


async def start_link(port: int) -> Link:
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
    return link


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path / "a.db")
    try:
        yield s
    finally:
        s.close()


async def until(done: Callable[[], bool], tf: float) -> None:
    for _ in range(int(500 * tf)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


def pump_until(client: GatewayClient, done: Callable[[], bool], tf: float) -> None:
    for _ in range(int(500 * tf)):
        if done():
            return
        client.pump(0.01)
    raise AssertionError("condition never met")


def test_sync_client_gets_a_reply_cut_off_by_a_reset_once_by_replay(
    served: Served, tf: float
) -> None:
    records: list[MessageRecord] = []
    client = GatewayClient(served.url, "u1", stream=True, timeout_s=10 * tf, on_done=records.append)
    first = client.request("hotels in Paris")
    served.llm.hold = True
    p = client.send("hotels in Rome")
    pump_until(client, lambda: p.record.chunks >= 1, tf)
    served.faults(Faults(reset=True))  # this socket and every reconnect attempt: reset
    served.release()
    served.call(lambda: asyncio.sleep(0.3 * tf))  # the reply commits meanwhile
    served.faults(Faults())
    rec = client.wait(p)
    client.close()
    assert first.status == "ok" and rec.status == "ok", rec.error
    assert rec.reply == "Reply 2 begins. Reply 2 ends."
    assert client.reconnects == 1 and client.replayed == 1 and client.resent == 0
    assert [r.msg_id for r in records] == [first.msg_id, p.record.msg_id]  # each once
    assert served.llm.runs == 2


def test_sync_client_resends_a_reply_still_running_and_joins_it(served: Served, tf: float) -> None:
    client = GatewayClient(served.url, "u1", stream=True, timeout_s=10 * tf)
    client.request("hotels in Paris")
    served.llm.hold = True
    p = client.send("hotels in Rome")
    pump_until(client, lambda: p.record.chunks >= 1, tf)
    served.faults(Faults(reset=True))
    served.faults(Faults())
    pump_until(client, lambda: client.resent == 1, tf)  # resumed: "started", so resent
    served.release()
    rec = client.wait(p)
    client.close()
    assert rec.status == "ok" and rec.reply == "Reply 2 begins. Reply 2 ends."
    assert client.reconnects == 1 and client.replayed == 0
    assert served.llm.runs == 2  # the resend joined the run: the agent ran once


def test_sync_client_ends_in_error_with_the_reason_when_reconnects_fail(
    served: Served, tf: float
) -> None:
    client = GatewayClient(served.url, "u1", timeout_s=10 * tf, max_reconnects=2)
    served.llm.hold = True
    p = client.send("hotels in Rome")
    served.call(lambda: asyncio.wait_for(served.llm.first_sent.wait(), 5 * tf))
    served.faults(Faults(reset=True, refuse=True))
    rec = client.wait(p)
    client.close()
    served.faults(Faults())
    served.release()
    assert rec.status == "error"
    assert "connection lost" in rec.error and "2 reconnects failed" in rec.error


def test_sync_client_says_lost_only_when_the_worker_never_got_it(served: Served, tf: float) -> None:
    client = GatewayClient(served.url, "u1", timeout_s=10 * tf, resend=False)
    client.request("hotels in Paris")
    served.faults(Faults(blackhole=True))  # accepted, never delivered
    p = client.send("hotels in Rome")
    served.faults(Faults(reset=True))
    served.faults(Faults())
    rec = client.wait(p)
    client.close()
    assert rec.status == "lost" and rec.error == "the gateway never received it"
    assert served.llm.runs == 1


async def test_async_client_gets_a_reply_cut_off_by_a_reset_once(
    port: int, tmp_path: Path, tf: float
) -> None:
    llm = GatedLLM()
    async with running_worker(port, tmp_path / "a.db", llm=llm):
        link = await start_link(port)
        try:
            client = AsyncGatewayClient(
                f"http://127.0.0.1:{link.listen_port}", "u1", stream=True, timeout_s=10 * tf
            )
            async with client:
                first = await client.request("hotels in Paris")
                llm.hold = True
                cut = await client.send("hotels in Rome")
                await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
                await link.set_faults(Faults(reset=True))
                llm.gate.set()
                await asyncio.sleep(0.3 * tf)
                await link.set_faults(Faults())
                replayed = await client.wait(cut)
                llm.hold, llm.gate = True, asyncio.Event()
                joined = await client.send("hotels in Oslo")
                await until(lambda: joined.record.chunks >= 1, tf)
                await link.set_faults(Faults(reset=True))
                await link.set_faults(Faults())
                await until(lambda: client.resent >= 1, tf)
                llm.gate.set()
                rejoined = await client.wait(joined)
                after = await client.request("hotels in Lima")
        finally:
            await link.stop()
    assert [r.status for r in (first, replayed, rejoined, after)] == ["ok"] * 4
    assert replayed.reply == "Reply 2 begins. Reply 2 ends."
    assert rejoined.reply == "Reply 3 begins. Reply 3 ends."
    assert client.reconnects == 2 and client.replayed == 1 and client.resent == 1
    assert llm.runs == 4


async def test_async_client_ends_in_error_when_reconnects_fail(
    port: int, tmp_path: Path, tf: float
) -> None:
    llm = GatedLLM()
    llm.hold = True
    async with running_worker(port, tmp_path / "a.db", llm=llm):
        link = await start_link(port)
        try:
            client = AsyncGatewayClient(
                f"http://127.0.0.1:{link.listen_port}", "u1", timeout_s=10 * tf, max_reconnects=2
            )
            async with client:
                p = await client.send("hotels in Rome")
                await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
                await link.set_faults(Faults(reset=True, refuse=True))
                rec = await client.wait(p)
                llm.gate.set()
                await link.set_faults(Faults())
                after = await client.request("hotels in Oslo")  # starts afresh
        finally:
            await link.stop()
    assert rec.status == "error" and "2 reconnects failed" in rec.error
    assert after.status == "ok" and after.reply == "Reply 2 begins. Reply 2 ends."
