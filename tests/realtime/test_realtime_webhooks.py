"""Outbound webhooks: signed events, retries while the receiver fails, a bounded queue."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from conftest import free_port

from travelagent.client.centrifugo import CentrifugoClient, CentrifugoError, make_token
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import verify

JWT_SECRET = "webhook-test-jwt-secret-long-enough!!"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-test-secret-of-some-length").decode()


class Receiver:
    """A test worker: fails the first ``fail_first`` requests with 500, then accepts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.accepted: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.arrived = asyncio.Event()
        self.gate: asyncio.Event | None = None  # when set, requests wait for it

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verify(WEBHOOK_SECRET, dict(request.headers), body)
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.requests <= self.fail_first:
            return web.Response(status=500, text="not yet")
        self.accepted[request.headers["webhook-id"]].append(json.loads(body))
        self.arrived.set()
        return web.json_response({"ok": True})

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for es in self.accepted.values() for e in es if kind in (None, e["type"])]


@asynccontextmanager
async def receiving(receiver: Receiver, port: int) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def config(port: int, webhook_url: str, **kw: Any) -> RealtimeConfig:
    base: dict[str, Any] = dict(
        port=port,
        jwt_secret=JWT_SECRET,
        api_key="k",
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=webhook_url,
        webhook_backoff_initial_s=0.02,
        webhook_backoff_max_s=0.1,
        webhook_max_attempts=20,
    )
    base.update(kw)
    return RealtimeConfig(**base)


async def until(pred: Any, tf: float, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s * tf / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_publication_becomes_a_signed_message_event_with_its_trace(port, tf) -> None:
    receiver = Receiver()
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(config(port, url)) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        trace = Trace.start("m1")
        trace.stamp("client.send", "client")
        await c.publish("travel:u1", {"text": "Paris?", "id": "m1", "trace": trace.to_wire()})
        await asyncio.wait_for(receiver.arrived.wait(), 5 * tf)
        [event] = receiver.events("message")
        assert event["room"] == "travel:u1" and event["userId"] == "u1"
        assert event["message"]["text"] == "Paris?" and event["message"]["id"] == "m1"
        got = Trace.from_wire(event["message"]["trace"])
        assert [n for n, _, _ in got.stamps] == ["client.send", "realtime.recv", "realtime.webhook"]
        assert isinstance(event["timestamp"], int)
        await c.aclose()


async def test_webhook_is_retried_until_accepted_and_arrives_once_per_id(port, tf) -> None:
    receiver = Receiver(fail_first=3)
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(config(port, url, webhook_presence=False)) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.publish("room:a", {"text": "hello"})
        await asyncio.wait_for(receiver.arrived.wait(), 5 * tf)
        await until(lambda: rt.service.stats()["webhooks_sent"] == 1, tf)
        assert receiver.requests == 4
        assert [len(v) for v in receiver.accepted.values()] == [1]
        stats = rt.service.stats()
        assert stats["webhooks_retried"] == 3 and stats["webhooks_failed"] == 0
        await c.aclose()


async def test_webhook_waits_out_a_receiver_that_is_down(port, tf) -> None:
    receiver_port = free_port()
    url = f"http://127.0.0.1:{receiver_port}/hook"
    async with running_realtime(config(port, url, webhook_presence=False)) as rt:
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.publish("travel:u1", {"text": "anyone?"})
        await until(lambda: rt.service.stats()["webhooks_retried"] >= 1, tf)
        receiver = Receiver()
        async with receiving(receiver, receiver_port):
            await asyncio.wait_for(receiver.arrived.wait(), 5 * tf)
        assert [e["message"]["text"] for e in receiver.events()] == ["anyone?"]
        await c.aclose()


async def test_full_webhook_queue_refuses_the_publish_with_an_error(port, tf) -> None:
    receiver = Receiver()
    receiver.gate = asyncio.Event()  # hold the one worker busy
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(
            config(port, url, webhook_queue_size=1, webhook_workers=1, webhook_presence=False)
        ) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.publish("travel:u1", {"text": "1"})
        await until(lambda: receiver.requests == 1, tf)  # the worker holds event 1
        await c.publish("travel:u1", {"text": "2"})  # queued
        with pytest.raises(CentrifugoError) as info:
            await c.publish("travel:u1", {"text": "3"})
        assert info.value.code == 106
        receiver.gate.set()
        await until(lambda: len(receiver.events()) == 2, tf)
        assert sorted(e["message"]["text"] for e in receiver.events()) == ["1", "2"]
        assert rt.service.stats()["webhooks_rejected_full"] == 1
        await c.aclose()


async def test_joining_and_leaving_a_room_send_presence_events(port, tf) -> None:
    receiver = Receiver()
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(config(port, url, webhook_connection=True)) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.subscribe("room:lobby")
        await c.subscribe("travel:u1")  # not a room: no presence event
        await c.aclose()
        await until(lambda: len(receiver.events()) == 4, tf)
        presence = receiver.events("presence")
        assert [(e["room"], e["message"]["action"]) for e in presence] == [
            ("room:lobby", "join"),
            ("room:lobby", "leave"),
        ]
        conn = receiver.events("connection")
        assert sorted(e["message"]["text"] for e in conn) == ["connect", "disconnect"]
