"""The official centrifuge-python SDK, unmodified, against the realtime service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from travelagent.client.centrifugo import make_token
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import RunningRealtime, running_realtime

JWT_SECRET = "sdk-test-jwt-secret-long-enough-for-hs256"
API_KEY = "sdk-test-api-key"


def config(port: int, **kw: Any) -> RealtimeConfig:
    return RealtimeConfig(port=port, jwt_secret=JWT_SECRET, api_key=API_KEY, webhook_url="", **kw)


class Events(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.q.put_nowait(("subscribed", ctx))

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.q.put_nowait(("pub", ctx.pub))

    async def on_join(self, ctx: Any) -> None:
        self.q.put_nowait(("join", ctx.info))

    async def on_leave(self, ctx: Any) -> None:
        self.q.put_nowait(("leave", ctx.info))

    async def next(self, kind: str, tf: float) -> Any:
        while True:
            k, v = await asyncio.wait_for(self.q.get(), 5 * tf)
            if k == kind:
                return v


def sdk_client(rt: RunningRealtime, user: str) -> Client:
    return Client(
        rt.ws_url,
        events=ClientEventHandler(),
        token=make_token(user, JWT_SECRET),
        proxy=None,
        min_reconnect_delay=0.2,
    )


@pytest.fixture
async def rt(port: int) -> AsyncIterator[RunningRealtime]:
    async with running_realtime(config(port)) as running:
        yield running


async def test_sdk_connects_subscribes_publishes_and_receives(rt: Any, tf: float) -> None:
    client = sdk_client(rt, "u1")
    events = Events()
    sub = client.new_subscription("travel:u1", events=events, recoverable=True)
    await client.connect()
    await sub.subscribe()
    subscribed = await events.next("subscribed", tf)
    assert subscribed.recoverable and subscribed.stream_position.epoch
    await sub.publish({"text": "hello"})
    pub = await events.next("pub", tf)
    assert pub.data == {"text": "hello"} and pub.offset == 1 and pub.info.user == "u1"
    presence = await sub.presence()
    assert [c.user for c in presence.clients.values()] == ["u1"]
    stats = await sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (1, 1)
    history = await sub.history(limit=10)
    assert [p.data for p in history.publications] == [{"text": "hello"}]
    assert history.offset == 1 and history.epoch == subscribed.stream_position.epoch
    await client.disconnect()


async def test_sdk_sees_join_and_leave_in_a_room(rt: Any, tf: float) -> None:
    a, b = sdk_client(rt, "alice"), sdk_client(rt, "bob")
    ev_a = Events()
    sub_a = a.new_subscription("room:lobby", events=ev_a, join_leave=True)
    sub_b = b.new_subscription("room:lobby", events=Events())
    await a.connect()
    await sub_a.subscribe()
    await ev_a.next("subscribed", tf)
    await b.connect()
    await sub_b.subscribe()
    assert (await ev_a.next("join", tf)).user == "bob"
    await b.disconnect()
    assert (await ev_a.next("leave", tf)).user == "bob"
    await a.disconnect()


async def test_sdk_recovers_publications_missed_while_its_connection_was_down(
    rt: Any, tf: float
) -> None:
    client = sdk_client(rt, "u1")
    events = Events()
    sub = client.new_subscription("travel:u1", events=events, recoverable=True)
    await client.connect()
    await sub.subscribe()
    await events.next("subscribed", tf)
    await rt.service.close_sockets()  # drop every connection
    # Published while the SDK waits to reconnect: it must come back through recovery.
    rt.service.hub.publish("travel:u1", {"n": 1})
    rt.service.hub.publish("travel:u1", {"n": 2})
    resubscribed = await events.next("subscribed", tf)
    assert resubscribed.was_recovering and resubscribed.recovered
    assert (await events.next("pub", tf)).data == {"n": 1}
    assert (await events.next("pub", tf)).data == {"n": 2}
    await client.disconnect()


async def restart_and_resubscribe(rt: RunningRealtime, tf: float) -> SubscribedContext:
    client = sdk_client(rt, "u1")
    events = Events()
    sub = client.new_subscription("travel:u1", events=events, recoverable=True)
    await client.connect()
    await sub.subscribe()
    first = await events.next("subscribed", tf)
    await sub.publish({"n": 1})
    await events.next("pub", tf)
    await rt.restart()
    again = await events.next("subscribed", tf)
    assert again.was_recovering
    assert first.stream_position is not None and again.stream_position is not None
    await client.disconnect()
    return again


async def test_sdk_is_told_not_recovered_after_restart_with_memory_history(
    rt: Any, tf: float
) -> None:
    again = await restart_and_resubscribe(rt, tf)
    assert again.recovered is False


async def test_sdk_recovers_after_restart_with_sqlite_history(
    port: int, tf: float, tmp_path: Path
) -> None:
    cfg = config(port, history="sqlite", db_path=str(tmp_path / "rt.sqlite"))
    async with running_realtime(cfg) as rt:
        again = await restart_and_resubscribe(rt, tf)
        assert again.recovered is True and again.stream_position.offset == 1


async def test_sdk_receives_a_server_api_publication(rt: Any, tf: float) -> None:
    client = sdk_client(rt, "u1")
    events = Events()
    sub = client.new_subscription("travel:u1", events=events)
    await client.connect()
    await sub.subscribe()
    await events.next("subscribed", tf)
    async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": API_KEY}) as http:
        r = await http.post("/api/publish", json={"channel": "travel:u1", "data": {"x": 1}})
        assert r.status_code == 200
    assert (await events.next("pub", tf)).data == {"x": 1}
    await client.disconnect()
