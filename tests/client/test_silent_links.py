"""A client whose link goes silent (a black hole: bytes read, nothing delivered, no FIN, no RST)
while messages are in flight finds out by pinging, reconnects and resumes or recovers, so the
reply still comes; a realtime service down longer than eight reconnect attempts' worth of
backoff is waited for until the message's deadline. Real servers, a real link proxy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import free_port
from worker_helpers import GatedLLM, running_worker

from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.client.records import MessageRecord
from travelagent.config import JWT_SECRET_ENV, secret
from travelagent.link.faults import Faults
from travelagent.link.proxy import Link
from travelagent.link.schedule import LinkShape
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime

HOLD_S = 1.5  # as the chaos experiment's black hole
FAST_RETRIES = (0.05, 0.1, 0.2) + (0.4,) * 16


async def start_link(port: int) -> Link:
    link = Link(
        "client", listen_host="127.0.0.1", listen_port=0, upstream_host="127.0.0.1",
        upstream_port=port, shape=LinkShape(delay_ms=0, setup_rtts=0), seed=1,
    )  # fmt: skip
    await link.start()
    return link


async def blackhole(link: Link, hold_s: float) -> None:
    await link.set_faults(Faults(blackhole=True))
    await asyncio.sleep(hold_s)
    await link.set_faults(Faults())


async def test_gateway_client_finds_a_silent_link_mid_reply_and_resumes(
    tmp_path: Path, tf: float
) -> None:
    port = free_port()
    llm = GatedLLM()
    llm.hold = True
    async with running_worker(port, tmp_path / "w.db", llm=llm):
        link = await start_link(port)
        try:
            client = AsyncGatewayClient(
                f"http://127.0.0.1:{link.listen_port}", "u1", timeout_s=8 * tf
            )
            async with client:
                cut = await client.send("hotels in Rome")
                await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
                hole = asyncio.create_task(blackhole(link, HOLD_S))
                await asyncio.sleep(0.1)
                llm.gate.set()  # the rest of the reply goes into the black hole
                swallowed = await client.send("hotels in Oslo")  # so does this message
                rec, rec2 = await client.wait(cut), await client.wait(swallowed)
                await hole
                after = await client.request("hotels in Lima")
        finally:
            await link.stop()
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 1 begins. Reply 1 ends."
    assert rec2.status == "ok", rec2.error
    assert after.status == "ok", after.error
    assert client.silent_drops >= 1 and client.reconnects >= 1
    assert llm.runs == 3  # no turn ran twice


async def test_realtime_client_finds_a_silent_link_mid_reply_and_recovers(
    tmp_path: Path, tf: float
) -> None:
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port, webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook",
        webhook_retry_schedule_s=FAST_RETRIES, history="sqlite",
        db_path=str(tmp_path / "rt.sqlite"), webhook_outbox_path=str(tmp_path / "outbox.sqlite"),
    )  # fmt: skip
    llm = GatedLLM()
    async with (
        running_realtime(cfg) as rt,
        running_worker(
            w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=True,
            publish="http-new",
        ),
    ):  # fmt: skip
        link = await start_link(rt_port)
        try:
            client = AsyncRealtimeClient(
                f"ws://127.0.0.1:{link.listen_port}/connection/websocket", "u1",
                jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=8 * tf,
            )  # fmt: skip
            async with client:
                first = await client.request("hotels in Paris")
                llm.hold = True
                cut = await client.send("hotels in Rome")
                await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
                hole = asyncio.create_task(blackhole(link, HOLD_S))
                await asyncio.sleep(0.1)
                llm.gate.set()
                rec = await client.wait(cut)
                await hole
                after = await client.request("hotels in Lima")
        finally:
            await link.stop()
    assert first.status == "ok", first.error
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 2 begins. Reply 2 ends."
    assert after.status == "ok", after.error
    assert client.silent_drops >= 1 and client.reconnects >= 1
    assert llm.runs == 3


async def test_realtime_client_waits_out_a_slow_restart_until_the_deadline(
    tmp_path: Path, tf: float
) -> None:
    """Down 7 s: more than eight doubling attempts (about 6.4 s) would have waited."""
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port, webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook",
        webhook_retry_schedule_s=FAST_RETRIES, history="sqlite",
        db_path=str(tmp_path / "rt.sqlite"), webhook_outbox_path=str(tmp_path / "outbox.sqlite"),
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
            rt.ws_url, "u1", jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=12 * tf
        )
        async with client:
            llm.hold = True
            cut = await client.send("hotels in Rome")
            await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
            await rt.stop()
            t0 = time.monotonic()
            await asyncio.sleep(7.0)
            await rt.start()
            llm.gate.set()
            rec = await client.wait(cut)
            waited = time.monotonic() - t0
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 1 begins. Reply 1 ends."
    assert waited < 12 * tf


async def test_a_final_published_while_away_is_found_in_history_when_recovery_fails(
    tmp_path: Path, tf: float
) -> None:
    """Memory history: a restart starts a new epoch, so recovery from the old position fails;
    the final published before the client is back is in the channel's history all the same,
    and the client must take it from there rather than end the message lost."""
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port, webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook",
        webhook_retry_schedule_s=FAST_RETRIES,
    )  # fmt: skip
    llm = GatedLLM()
    async with (
        running_realtime(cfg) as rt,
        running_worker(
            w_port, tmp_path / "w.db", llm=llm, realtime_url=rt.base_url, stream=True,
            publish="http-new",
        ),
    ):  # fmt: skip
        link = await start_link(rt_port)
        try:
            client = AsyncRealtimeClient(
                f"ws://127.0.0.1:{link.listen_port}/connection/websocket", "u1",
                jwt_secret=secret(JWT_SECRET_ENV), stream=True, timeout_s=8 * tf,
            )  # fmt: skip
            async with client:
                llm.hold = True
                cut = await client.send("hotels in Rome")
                await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
                await link.set_faults(Faults(refuse=True))  # the client stays away meanwhile
                await rt.restart()
                llm.gate.set()  # the rest is published into the new epoch's history
                await asyncio.sleep(1.0 * tf)
                await link.set_faults(Faults())
                rec = await client.wait(cut)
        finally:
            await link.stop()
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 1 begins. Reply 1 ends."


async def test_the_blocking_gateway_client_pings_a_silent_link_drops_it_and_resumes(
    tmp_path: Path, tf: float
) -> None:
    from travelagent.client.sync_gateway import GatewayClient

    port = free_port()
    llm = GatedLLM()
    llm.hold = True
    async with running_worker(port, tmp_path / "w.db", llm=llm):
        link = await start_link(port)
        client = GatewayClient(
            f"http://127.0.0.1:{link.listen_port}", "u1", timeout_s=10 * tf,
            connect_timeout_s=1.0,
        )  # fmt: skip
        client.ping_s, client.ping_timeout_s = 0.3, 0.5

        def talk() -> MessageRecord:
            client.connect()
            try:
                return client.request("hotels in Rome")
            finally:
                client.close()

        try:
            talking = asyncio.create_task(asyncio.to_thread(talk))
            await asyncio.wait_for(llm.first_sent.wait(), 5 * tf)
            # Longer than the ping and its deadline: without the check, the client would sit
            # on the dead socket until the hole let the held bytes through.
            hole = asyncio.create_task(blackhole(link, 3.0))
            await asyncio.sleep(0.1)
            llm.gate.set()
            rec = await talking
            await hole
        finally:
            await link.stop()
    assert rec.status == "ok", rec.error
    assert rec.reply == "Reply 1 begins. Reply 1 ends."
    assert client.silent_drops >= 1 and client.reconnects >= 1
    assert llm.runs == 1
