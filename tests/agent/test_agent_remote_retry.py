"""Remote agent calls retried after transport failures, never running a turn twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import free_port
from test_agent_actor import RecordingSink, stored
from test_agent_host import agent_host

from travelagent.agent.remote import RemoteAgentDirectory
from travelagent.link.faults import Faults
from travelagent.link.proxy import Link
from travelagent.link.schedule import LinkShape
from travelagent.wire.trace import Trace


class GatedLLM:
    """Streams "partial ", then waits for ``gate`` before "done"; counts its runs."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.streaming = asyncio.Event()
        self.runs = 0

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        self.runs += 1
        yield "partial "
        self.streaming.set()
        await self.gate.wait()
        yield "done"

    async def aclose(self) -> None:
        return None


async def test_a_stream_cut_by_a_reset_is_retried_and_the_turn_commits_once(
    tmp_path: Path, tf: float
) -> None:
    llm = GatedLLM()
    db = tmp_path / "host.db"
    async with agent_host(db, free_port(), llm, stream_default=True) as url:
        port = int(url.rsplit(":", 1)[1])
        link = Link(
            "worker_agents",
            listen_host="127.0.0.1",
            listen_port=0,
            upstream_host="127.0.0.1",
            upstream_port=port,
            shape=LinkShape(setup_rtts=0),
        )
        await link.start()
        d = RemoteAgentDirectory(f"http://127.0.0.1:{link.listen_port}", retry_s=5 * tf)
        try:
            sink = RecordingSink()
            call = asyncio.create_task(
                d.get("u1").on_message(sink, "hotels in Rome", trace=None, stream=True, msg_id="m1")
            )
            await asyncio.wait_for(llm.streaming.wait(), 5 * tf)
            for _ in range(int(1000 * tf)):  # the first chunk is passed on to the sink
                if ("chunk", "partial ") in sink.events:
                    break
                await asyncio.sleep(0.005)
            await link.set_faults(Faults(reset=True))  # the call's connection goes
            await asyncio.sleep(0.05)
            await link.set_faults(Faults())
            llm.gate.set()
            await asyncio.wait_for(call, 10 * tf)
        finally:
            await d.close()
            await link.stop()
    assert link.stats.resets >= 1
    assert d.get("u1").retries >= 1
    chunks = "".join(t for kind, t in sink.events if kind == "chunk")
    assert sink.events[-1] == ("complete", "partial done")
    assert chunks == "partial done"  # nothing passed on twice
    # The host ran the cut-off turn on to its commit and the retry joined it: the LLM ran
    # once, and the store holds one question and one reply.
    assert llm.runs == 1
    assert stored(db, "u1") == [("user", "hotels in Rome"), ("assistant", "partial done")]


async def test_a_host_down_for_a_moment_is_waited_for_within_the_deadline(
    tmp_path: Path, tf: float
) -> None:
    port = free_port()
    d = RemoteAgentDirectory(f"http://127.0.0.1:{port}", retry_s=5 * tf)
    try:
        call = asyncio.create_task(d.get("u1").handle_message("hotels in Oslo", msg_id="m1"))
        await asyncio.sleep(0.3)
        assert not call.done()  # refused, and retrying
        async with agent_host(tmp_path / "host.db", port):
            reply = await asyncio.wait_for(call, 10 * tf)
    finally:
        await d.close()
    assert reply and d.get("u1").retries >= 1


async def test_a_host_that_stays_down_is_an_explicit_error_after_the_deadline(
    tf: float,
) -> None:
    d = RemoteAgentDirectory(f"http://127.0.0.1:{free_port()}", retry_s=0.5)
    try:
        sink = RecordingSink()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await d.get("u1").on_message(sink, "hi", trace=None, stream=True, msg_id="m1")
        elapsed = loop.time() - t0
    finally:
        await d.close()
    kind, reason = sink.events[-1]
    assert kind == "error" and "unreachable after" in reason
    assert 0.3 <= elapsed <= 0.5 + 2 * tf
