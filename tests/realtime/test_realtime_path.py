"""The realtime path end to end over real sockets: client → realtime → webhook → worker →
agent → publish → realtime → client, in every publish mode, streamed and not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from worker_helpers import running_worker

from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.config import JWT_SECRET_ENV, secret
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import REALTIME_PATH


@contextlib.asynccontextmanager
async def realtime_path(tmp_path: Path, **worker: Any) -> AsyncIterator[str]:
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port, webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook"
    )
    async with (
        running_realtime(cfg) as rt,
        running_worker(
            w_port, tmp_path / "w.db", realtime_url=f"http://127.0.0.1:{rt_port}", **worker
        ),
    ):
        yield rt.ws_url


@pytest.mark.parametrize("publish", ["http-new", "http-pooled", "ws-persistent"])
@pytest.mark.parametrize("stream", [False, True])
async def test_every_publish_mode_delivers_the_reply_with_every_stamp(
    tmp_path: Path, publish: Any, stream: Any
) -> None:
    async with realtime_path(tmp_path, publish=publish, stream=stream) as url:
        client = AsyncRealtimeClient(
            url, "u1", jwt_secret=secret(JWT_SECRET_ENV), publish=publish, stream=stream,
            timeout_s=10,
        )  # fmt: skip
        async with client:
            recs = [await client.request(t) for t in ("hotels in Paris", "show my itinerary")]
    for rec in recs:
        assert rec.status == "ok", rec.error
        assert rec.trace is not None
        names = [s[0] for s in rec.trace.stamps]
        assert names == list(REALTIME_PATH)
        # client.first marks the first frame, which for a streamed reply precedes llm.done
        times = [s[1] for s in rec.trace.stamps if s[0] != "client.first"]
        assert times == sorted(times)
        assert rec.recv_ns is not None and rec.first_ns is not None
        assert (rec.chunks > 0) == stream
        if stream:
            assert rec.first_ns < rec.recv_ns


async def test_many_realtime_clients_each_get_their_own_replies(tmp_path: Path) -> None:
    async with realtime_path(tmp_path, publish="ws-persistent", stream=True) as url:

        async def one(i: int) -> list[str]:
            c = AsyncRealtimeClient(url, f"user{i}", jwt_secret=secret(JWT_SECRET_ENV))
            async with c:
                return [(await c.request(f"hotels in Rome {k}")).status for k in range(3)]

        results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [["ok"] * 3] * 20


async def test_ack_first_mode_delivers_the_reply_too(tmp_path: Path) -> None:
    async with realtime_path(tmp_path, webhook_mode="ack-first", stream=False) as url:
        async with AsyncRealtimeClient(url, "u2", jwt_secret=secret(JWT_SECRET_ENV)) as c:
            rec = await c.request("when is the best time to visit Lisbon?")
    assert rec.status == "ok" and rec.trace is not None
    assert [s[0] for s in rec.trace.stamps] == list(REALTIME_PATH)


async def test_webhooks_retried_while_the_worker_is_down_each_make_exactly_one_reply(
    tmp_path: Path,
) -> None:
    """Messages published while the worker is down are retried by the realtime service; once
    the worker is up each gets exactly one reply."""
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port,
        webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook",
        webhook_retry_schedule_s=(0.05, 0.1, 0.2) + (0.4,) * 16,
    )
    async with running_realtime(cfg) as rt:
        client = AsyncRealtimeClient(rt.ws_url, "u7", jwt_secret=secret(JWT_SECRET_ENV))
        async with client:
            pending = [await client.send(f"hotels in Paris {k}") for k in range(5)]
            await asyncio.sleep(0.3)  # the worker is down: every first attempt fails
            replies: list[str] = []
            async with running_worker(
                w_port, tmp_path / "w.db", realtime_url=f"http://127.0.0.1:{rt_port}",
                stream=False,
            ):  # fmt: skip
                recs = [await client.wait(p) for p in pending]
                # wait for stragglers: no second reply for any message may arrive
                await asyncio.sleep(0.5)
                history = await client.centrifugo.history("travel:u7", limit=-1)
            for pub in history.get("publications", []):
                data = pub.get("data", {})
                if data.get("type") == "agent_response":
                    replies.append(data["id"])
        assert [r.status for r in recs] == ["ok"] * 5
        assert sorted(replies) == sorted(r.msg_id for r in recs)
        assert rt.service.webhooks is not None and rt.service.webhooks.counters.retried >= 5


async def test_a_reply_published_while_the_client_was_away_is_recovered(tmp_path: Path) -> None:
    async with realtime_path(tmp_path, stream=False, profile="note") as url:
        client = AsyncRealtimeClient(
            url, "u8", jwt_secret=secret(JWT_SECRET_ENV), timeout_s=10, auto_reconnect=False
        )
        async with client:
            first = await client.request("hotels in Paris")
            assert first.status == "ok"
            pending = await client.send("when is the best time to visit Lisbon?")
            await client.centrifugo.aclose()  # the socket drops before the reply (~50-200 ms)
            await asyncio.sleep(0.6)
            assert not pending.done.is_set()
            assert await client.reconnect() is True
            rec = await client.wait(pending)
    assert rec.status == "ok" and "Lisbon" in rec.reply and rec.trace is not None
    # a recovered reply was never delivered live: it has no realtime.deliver stamp
    assert [s[0] for s in rec.trace.stamps] == [n for n in REALTIME_PATH if n != "realtime.deliver"]
