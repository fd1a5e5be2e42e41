"""Outbound webhooks: signed events, retries while the receiver fails, a bounded queue."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import free_port

from travelagent.client.centrifugo import CentrifugoClient, CentrifugoError, make_token
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.outbox import Outbox
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import STANDARD_RETRY_SCHEDULE_S, next_delay_s, retryable, verify

JWT_SECRET = "webhook-test-jwt-secret-long-enough!!"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-test-secret-of-some-length").decode()


class Receiver:
    """A test worker: fails the first ``fail_first`` requests with 500, then accepts."""

    def __init__(self, fail_first: int = 0, *, status: int = 500) -> None:
        self.fail_first, self.status = fail_first, status
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
            return web.Response(status=self.status, text="not yet")
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
        webhook_retry_schedule_s=(0.02, 0.04, 0.08) + (0.1,) * 16,
    )
    base.update(kw)
    return RealtimeConfig(**base)


async def until(pred: Any, tf: float, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s * tf / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_publication_becomes_a_signed_message_event_with_its_trace(
    port: int, tf: float
) -> None:
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


async def test_webhook_is_retried_until_accepted_and_arrives_once_per_id(
    port: int, tf: float
) -> None:
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


async def test_webhook_waits_out_a_receiver_that_is_down(port: int, tf: float) -> None:
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


async def test_full_webhook_queue_refuses_the_publish_with_an_error(port: int, tf: float) -> None:
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


async def test_joining_and_leaving_a_room_send_presence_events(port: int, tf: float) -> None:
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


def test_the_default_retry_schedule_is_standard_webhooks() -> None:
    assert RealtimeConfig().webhook_retry_schedule_s == STANDARD_RETRY_SCHEDULE_S
    # immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    assert [next_delay_s(STANDARD_RETRY_SCHEDULE_S, n) for n in range(1, 9)] == [
        5, 300, 1800, 7200, 18000, 36000, 36000, None]  # fmt: skip


def test_server_errors_and_throttling_are_retried_other_refusals_are_final() -> None:
    assert all(retryable(s) for s in (500, 502, 503, 408, 425, 429))
    assert not any(retryable(s) for s in (400, 401, 404, 413))


async def dead_letter_run(port: int, tf: float, receiver: Receiver) -> tuple[Any, Any, Any]:
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(
            config(port, url, webhook_presence=False, webhook_retry_schedule_s=(0.01, 0.02))
        ) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.subscribe("travel:u1")
        await c.publish("travel:u1", {"text": "Paris?", "id": "m1"})
        pushes: list[Any] = []
        while len(pushes) < 2:  # the user's own publication, then the error
            pushes.append((await asyncio.wait_for(c.pushes.get(), 5 * tf)).data)
        stats = rt.service.stats()
        assert rt.service.webhooks is not None
        [letter] = rt.service.webhooks.dead_letters
        await c.aclose()
    return pushes[1], letter, stats


async def test_a_webhook_that_gives_up_is_dead_lettered_and_the_user_is_told(
    port: int, tf: float
) -> None:
    receiver = Receiver(fail_first=100)
    error, letter, stats = await dead_letter_run(port, tf, receiver)
    assert receiver.requests == 3  # the first attempt and the two of the schedule
    assert letter.attempts == 3 and "gave up after 3 attempts" in letter.reason
    assert "HTTP 500" in letter.reason and letter.event["message"]["id"] == "m1"
    assert error["type"] == "agent_response" and error["isError"] is True
    assert error["id"] == "m1" and error["userId"] == "u1"
    assert "could not be reached" in error["text"] and "HTTP 500" in error["text"]
    assert stats["webhooks_failed"] == 1 and stats["webhooks_retried"] == 2


async def test_a_webhook_the_worker_refuses_is_dead_lettered_at_once_with_its_answer(
    port: int, tf: float
) -> None:
    receiver = Receiver(fail_first=100, status=400)
    error, letter, _ = await dead_letter_run(port, tf, receiver)
    assert receiver.requests == 1
    assert "HTTP 400: not yet" in letter.reason and error["isError"] is True


async def test_the_dead_letter_error_and_a_late_reply_make_one_final_in_the_channel(
    port: int,
) -> None:
    from travelagent.realtime.service import RealtimeService
    from travelagent.realtime.webhook_sender import DeadLetter

    service = RealtimeService(config(port, "http://127.0.0.1:1/hook"))
    event = {"type": "message", "room": "travel:u1", "userId": "u1", "message": {"id": "m1"}}
    service._tell_user(DeadLetter("msg_1", event, "down", 8, 0.0))
    service.hub.publish("travel:u1", {"text": "late"}, api_recv_ns=1, idempotency_key="m1:final")
    pubs = service.hub.history_read("travel:u1", limit=10)["publications"]
    assert [p["data"].get("isError") for p in pubs] == [True]


def owed_ids(path: str) -> list[str]:
    box = Outbox(path)
    try:
        return [o.event["message"]["id"] for o in box.owed()]
    finally:
        box.close()


def dead_letters(path: str) -> list[tuple[str, str, int]]:
    box = Outbox(path)
    try:
        return box.dead_letters()
    finally:
        box.close()


async def test_webhooks_owed_survive_a_restart_through_the_durable_outbox(
    port: int, tf: float, tmp_path: Path
) -> None:
    receiver_port = free_port()
    url = f"http://127.0.0.1:{receiver_port}/hook"
    outbox = str(tmp_path / "outbox.sqlite")
    cfg = config(
        port, url, webhook_presence=False, webhook_outbox_path=outbox,
        webhook_retry_schedule_s=(0.05,) * 100,
    )  # fmt: skip
    async with running_realtime(cfg) as rt:
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.publish("travel:u1", {"text": "anyone?", "id": "m1"})
        await until(lambda: rt.service.stats()["webhooks_retried"] >= 1, tf)  # the worker is down
        await c.aclose()
        await rt.stop()  # a restart: everything in memory is gone
        assert owed_ids(outbox) == ["m1"]
        receiver = Receiver()
        async with receiving(receiver, receiver_port):
            await rt.start()
            await asyncio.wait_for(receiver.arrived.wait(), 5 * tf)
            await until(lambda: rt.service.stats()["webhooks_sent"] == 1, tf)
        await asyncio.sleep(0.1)  # no second delivery may follow
    assert [e["message"]["id"] for e in receiver.events()] == ["m1"]
    assert len(receiver.accepted) == 1
    assert owed_ids(outbox) == []


async def test_dead_letters_are_kept_in_the_outbox_with_their_reason(
    port: int, tf: float, tmp_path: Path
) -> None:
    receiver = Receiver(fail_first=100, status=400)
    outbox = str(tmp_path / "outbox.sqlite")
    async with (
        receiving(receiver, free_port()) as url,
        running_realtime(
            config(port, url, webhook_presence=False, webhook_outbox_path=outbox)
        ) as rt,
    ):
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        await c.publish("travel:u1", {"text": "Paris?", "id": "m1"})
        await until(lambda: rt.service.stats()["webhooks_failed"] == 1, tf)
        await c.aclose()
    [(_, reason, attempts)] = dead_letters(outbox)
    assert "HTTP 400" in reason and attempts == 1
    assert owed_ids(outbox) == []


async def test_webhooks_waiting_for_a_retry_count_against_the_queue_bound(
    port: int, tf: float
) -> None:
    # Nothing listens at the worker's address: every event fails and waits 30 s for a retry,
    # leaving the queue itself empty. Without counting those, the service would take events
    # without end while the worker is down.
    url = f"http://127.0.0.1:{free_port()}/hook"
    cfg = config(port, url, webhook_queue_size=2, webhook_presence=False,
                 webhook_retry_schedule_s=(30.0,))  # fmt: skip
    async with running_realtime(cfg) as rt:
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET))
        await c.connect()
        for text in ("1", "2"):
            await c.publish("travel:u1", {"text": text})
        await until(lambda: rt.service.stats()["webhooks_retried"] == 2, tf)
        assert rt.service.stats()["webhooks_queued"] == 0
        with pytest.raises(CentrifugoError) as info:
            await c.publish("travel:u1", {"text": "3"})
        assert info.value.code == 106
        assert rt.service.stats()["webhooks_rejected_full"] == 1
        await c.aclose()


async def test_at_most_workers_webhooks_are_in_flight_each_on_a_connection_of_its_own(
    port: int, tf: float
) -> None:
    from travelagent.realtime.webhook_sender import WebhookJob, WebhookSender
    from travelagent.wire.webhooks import webhook_event

    receiver, in_flight, most = Receiver(), 0, 0
    handle = receiver.handle

    async def counting(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)  # long enough for the offers to pile up
        try:
            return await handle(request)
        finally:
            in_flight -= 1

    receiver.handle = counting  # type: ignore[method-assign]
    async with receiving(receiver, port) as url:
        sender = WebhookSender(url, WEBHOOK_SECRET, workers=2, queue_size=100)
        sender.start()
        try:
            for i in range(7):
                event = webhook_event("message", room="travel:u1", user_id="u1", text=f"m{i}")
                assert sender.offer(WebhookJob(event))
            assert sender.stats()["webhooks_queued"] == 5  # two went out at once
            for _ in range(int(500 * tf)):
                if sender.counters.sent == 7:
                    break
                await asyncio.sleep(0.01)
            opened = sum(c.opened for c in sender._connections)
        finally:
            await sender.aclose()
    assert sender.counters.sent == 7 and len(receiver.events("message")) == 7
    assert most == 2 and opened == 2
