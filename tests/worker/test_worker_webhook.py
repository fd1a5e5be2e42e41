"""The worker's webhook route over real sockets, with a publisher that records what it is given
(the realtime service itself is exercised end to end in test_realtime_path.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm import make_llm
from travelagent.config import WEBHOOK_SECRET_ENV, secret
from travelagent.wire.trace import MAX_STAMPS, Trace
from travelagent.wire.webhooks import encode_event, signed_headers, webhook_event
from travelagent.worker.app import create_app
from travelagent.worker.config import WorkerConfig
from travelagent.worker.keys import STATS as STATS_KEY
from travelagent.worker.publish import PublishError


class RecordingPublisher:
    mode = "test"

    def __init__(self, fail_first: int = 0) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.keys: list[str | None] = []
        self.fail_first = fail_first
        self.calls = 0

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.calls += 1
        self.keys.append(idempotency_key)
        if self.calls <= self.fail_first:
            raise PublishError("realtime unreachable (test)")
        self.published.append((channel, json.loads(json.dumps(data))))
        return {}

    async def aclose(self) -> None:
        pass

    def finals(self) -> list[dict[str, Any]]:
        return [d for _, d in self.published if not (d.get("streaming") or d.get("chunk"))]


@pytest.fixture
async def worker(port: int, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[web.AppRunner] = []

    async def start(**config: Any) -> tuple[str, RecordingPublisher]:
        pub = RecordingPublisher(config.pop("fail_first", 0))
        cfg = WorkerConfig(port=port, db_path=tmp_path / "w.db", **config)
        directory = LocalAgentDirectory(cfg.db_path, llm=make_llm("simulated", profile="instant"))
        app = create_app(cfg, directory=directory, publisher=pub)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.append(runner)
        return f"http://127.0.0.1:{port}/api/realtime/webhook", pub

    yield start
    for r in started:
        await r.cleanup()


def _signed(event: dict[str, Any], **kw: Any) -> tuple[bytes, dict[str, str]]:
    body = encode_event(event)
    return body, signed_headers(secret(WEBHOOK_SECRET_ENV), body, **kw)


def _message(text: str = "hotels in Paris", user: str = "u1", msg_id: str = "m1") -> dict[str, Any]:
    tr = Trace.start(msg_id)
    tr.stamp("client.send", "client")
    tr.stamp("realtime.recv", "realtime")
    tr.stamp("realtime.webhook", "realtime")
    return webhook_event("message", room=f"travel:{user}", user_id=user, text=text,
                         msg_id=msg_id, trace=tr)  # fmt: skip


async def test_signed_webhook_gets_one_published_reply_with_the_whole_trace(worker: Any) -> None:
    url, pub = await worker(stream=False)
    body, headers = _signed(_message())
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
    assert r.status_code == 200, r.text
    [(channel, data)] = pub.published
    assert channel == "travel:u1" and data["type"] == "agent_response"
    assert data["id"] == "m1" and "Paris" in data["text"]
    names = [s[0] for s in data["trace"]["stamps"]]
    assert names == [
        "client.send", "realtime.recv", "realtime.webhook", "worker.recv", "agent.start",
        "llm.first", "llm.done", "agent.done", "worker.publish",
    ]  # fmt: skip


async def test_streamed_reply_is_published_as_start_chunks_and_complete_in_order(
    worker: Any,
) -> None:
    url, pub = await worker(stream=True)
    body, headers = _signed(_message("flights from London to Tokyo on 2026-12-10"))
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, content=body, headers=headers)).status_code == 200
    frames = [d for _, d in pub.published]
    assert frames[0]["streaming"] is True
    assert all(f.get("chunk") for f in frames[1:-1]) and len(frames) > 3
    assert frames[-1]["complete"] is True
    assert "".join(f["text"] for f in frames[1:-1]) == frames[-1]["text"]
    chunk_keys = [f"m1:chunk:{i}" for i in range(len(frames) - 2)]
    assert pub.keys == ["m1:start", *chunk_keys, "m1:final"]  # one key per publication


async def test_replayed_webhook_never_makes_a_second_reply(worker: Any) -> None:
    url, pub = await worker(stream=False)
    body, headers = _signed(_message())
    async with httpx.AsyncClient() as c:
        rs = await asyncio.gather(*(c.post(url, content=body, headers=headers) for _ in range(5)))
    assert [r.status_code for r in rs] == [200] * 5
    assert len(pub.finals()) == 1


async def test_retry_after_a_failed_publish_republishes_the_same_reply(worker: Any) -> None:
    url, pub = await worker(stream=False, fail_first=1)
    body, headers = _signed(_message("add a day trip to Kyoto to my itinerary"))
    async with httpx.AsyncClient() as c:
        first = await c.post(url, content=body, headers=headers)
        assert first.status_code == 502 and "publish failed" in first.json()["error"]
        second = await c.post(url, content=body, headers=headers)
        assert second.status_code == 200
        show, h2 = _signed(_message("show my itinerary", msg_id="m2"))
        assert (await c.post(url, content=show, headers=h2)).status_code == 200
    finals = pub.finals()
    assert [f["id"] for f in finals] == ["m1", "m2"]
    assert pub.keys == ["m1:final", "m1:final", "m2:final"]  # the retry carries the same key
    # the agent added Kyoto once, not twice
    assert finals[1]["text"].count("Kyoto") == 1


async def test_a_redelivery_during_a_failing_publish_hears_the_failure_and_a_later_one_succeeds(
    port: int, tmp_path: Path
) -> None:
    class GatedPublisher(RecordingPublisher):
        """The first publish waits for the gate, then fails."""

        def __init__(self) -> None:
            super().__init__(fail_first=1)
            self.gate, self.entered = asyncio.Event(), asyncio.Event()

        async def publish(self, channel: str, data: Any, **kw: Any) -> dict[str, Any]:
            if self.calls == 0:
                self.entered.set()
                await self.gate.wait()
            return await super().publish(channel, data, **kw)

    pub = GatedPublisher()
    cfg = WorkerConfig(port=port, db_path=tmp_path / "w.db", stream=False)
    directory = LocalAgentDirectory(cfg.db_path, llm=make_llm("simulated", profile="instant"))
    runner = web.AppRunner(create_app(cfg, directory=directory, publisher=pub))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/api/realtime/webhook"
    body, headers = _signed(_message())
    try:
        async with httpx.AsyncClient() as c:
            first = asyncio.ensure_future(c.post(url, content=body, headers=headers))
            await pub.entered.wait()
            again = asyncio.ensure_future(c.post(url, content=body, headers=headers))
            await asyncio.sleep(0.05)  # the redelivery is waiting on the first one's turn
            pub.gate.set()
            assert [(await f).status_code for f in (first, again)] == [502, 502]
            third = await c.post(url, content=body, headers=headers)
            assert third.status_code == 200, third.text
    finally:
        await runner.cleanup()
    assert len(pub.finals()) == 1 and pub.keys == ["m1:final", "m1:final"]


async def test_ack_first_answers_at_once_and_publishes_in_the_background(worker: Any) -> None:
    url, pub = await worker(stream=False, webhook_mode="ack-first")
    body, headers = _signed(_message())
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
        assert r.status_code == 200 and r.json()["accepted"] == "m1"
        for _ in range(200):
            if pub.finals():
                break
            await asyncio.sleep(0.01)
    assert len(pub.finals()) == 1


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda b, h: (b, {**h, "webhook-signature": "v1,AAAA"}), 401, "signature"),
        (lambda b, h: (b + b" ", h), 401, "signature"),
        (
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-timestamp"}),
            401,
            "missing",
        ),
        (lambda b, h: (b, {"webhook-id": "x"}), 401, "missing"),
    ],
)
async def test_bad_signatures_are_refused_with_401(
    worker: Any, mutate: Any, status: Any, reason: Any
) -> None:
    url, pub = await worker()
    body, headers = mutate(*_signed(_message()))
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
    assert r.status_code == status and reason in r.json()["error"]
    assert pub.published == []


async def test_stale_timestamp_is_refused(worker: Any) -> None:
    import time

    url, pub = await worker()
    body, headers = _signed(_message(), now_s=int(time.time()) - 3600)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
    assert r.status_code == 401 and "too old" in r.json()["error"]
    assert pub.published == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not json", "valid JSON"),
        ([1, 2], "JSON object"),
        ({"type": "gossip", "room": "travel:u1"}, "'type'"),
        # a list is not hashable: this once raised TypeError in the set lookup, a 500
        ({"type": ["message"], "room": "travel:u1"}, "'type'"),
        ({"type": "message"}, "'room'"),
        # 256 characters once passed here and failed the reply's publish with a 502, forever
        ({"type": "message", "room": "room:" + "r" * 251, "message": {"text": "x"}}, "'room'"),
        ({"type": "message", "room": "travel:u1", "userId": "u1"}, "'message'"),
        ({"type": "message", "room": "travel:u1", "userId": "u1", "message": {"text": ""}}, "text"),
        ({"type": "message", "room": "r", "userId": "a/b", "message": {"text": "x"}}, "userId"),
        (
            {"type": "message", "room": "r", "userId": "u", "message": {"text": "x", "trace": 5}},
            "bad trace",
        ),
    ],
)
async def test_malformed_events_get_400_with_a_reason(worker: Any, event: Any, reason: Any) -> None:
    url, pub = await worker()
    body = event.encode() if isinstance(event, str) else json.dumps(event).encode()
    headers = signed_headers(secret(WEBHOOK_SECRET_ENV), body)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
    assert r.status_code == 400 and reason in r.json()["error"]
    assert pub.published == []


async def test_presence_and_connection_events_are_acknowledged_without_a_reply(worker: Any) -> None:
    url, pub = await worker()
    async with httpx.AsyncClient() as c:
        for kind in ("presence", "connection"):
            body, headers = _signed(webhook_event(kind, room="room:lobby", user_id="u1"))
            r = await c.post(url, content=body, headers=headers)
            assert r.status_code == 200 and r.json()["type"] == kind
    assert pub.published == []


async def test_centrifugo_publish_proxy_request_is_answered_and_replied_to(worker: Any) -> None:
    from travelagent.config import API_KEY_ENV

    url, pub = await worker(stream=False)
    req = {"client": "c1", "transport": "websocket", "protocol": "json", "encoding": "json",
           "user": "u9", "channel": "travel:u9",
           "data": {"type": "message", "text": "hotels in Rome", "id": "p1"}}  # fmt: skip
    async with httpx.AsyncClient() as c:
        denied = await c.post(url, json=req)
        assert denied.status_code == 401
        r = await c.post(url, json=req, headers={"X-API-Key": secret(API_KEY_ENV)})
        assert r.status_code == 200 and r.json() == {"result": {}}
        for _ in range(200):
            if pub.finals():
                break
            await asyncio.sleep(0.01)
    [final] = pub.finals()
    assert final["id"] == "p1" and "Rome" in final["text"]


async def test_a_webhook_whose_trace_is_already_full_still_gets_its_reply_published(
    worker: Any,
) -> None:
    url, pub = await worker(stream=False)
    full = Trace.start("m-full")
    for i in range(MAX_STAMPS):
        full.stamp("client.send", "client", t_ns=i)
    event = webhook_event("message", room="travel:u1", user_id="u1", text="hotels in Paris",
                          msg_id="m-full", trace=full)  # fmt: skip
    body, headers = _signed(event)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
    assert r.status_code == 200, r.text
    [(_, data)] = pub.published
    assert data["id"] == "m-full" and "Paris" in data["text"]
    assert len(data["trace"]["stamps"]) == MAX_STAMPS


async def test_a_webhook_redelivered_to_a_restarted_worker_is_known_and_never_runs_twice(
    port: int, tmp_path: Path
) -> None:
    from test_worker_turns import CountingLLM

    body, headers = _signed(_message(msg_id="m1"))
    runs = []
    for _ in range(2):  # the same database, a new process's worth of state each time
        llm = CountingLLM()
        pub = RecordingPublisher()
        cfg = WorkerConfig(port=port, db_path=tmp_path / "w.db")
        app = create_app(cfg, directory=LocalAgentDirectory(cfg.db_path, llm=llm), publisher=pub)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}/api/realtime/webhook"
                resp = await client.post(url, content=body, headers=headers)
                health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
        finally:
            await runner.cleanup()
        assert resp.status_code == 200
        runs.append((llm.runs, [f["text"] for f in pub.finals()], health["stats"]))
    (first_runs, first_finals, first_stats), (again_runs, again_finals, again_stats) = runs
    assert first_runs == 1 and again_runs == 0
    assert again_finals == first_finals and len(first_finals) == 1
    assert first_stats.get("webhook_messages") == 1
    assert again_stats.get("webhook_redelivered") == 1 and "webhook_messages" not in again_stats
    assert (tmp_path / "w.webhooks.db").exists()  # the ids' log, beside the agents' file


async def test_ack_first_keeps_its_promise_across_a_restart_without_running_the_agent_twice(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tf: float
) -> None:
    from test_worker_turns import CountingLLM

    from travelagent.worker import webhook
    from travelagent.worker.journal import TurnJournal

    monkeypatch.setattr(webhook, "BACKGROUND_PUBLISH_ATTEMPTS", 1)
    db = tmp_path / "w.db"
    body, headers = _signed(_message(msg_id="m1"))
    llms, pubs = (
        [CountingLLM(), CountingLLM()],
        [RecordingPublisher(fail_first=100), RecordingPublisher()],
    )
    for llm, pub in zip(llms, pubs, strict=True):
        cfg = WorkerConfig(port=port, db_path=db, webhook_mode="ack-first")
        app = create_app(cfg, directory=LocalAgentDirectory(db, llm=llm), publisher=pub)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            if pub is pubs[0]:  # the realtime service is down: "accepted", then nothing
                async with httpx.AsyncClient() as client:
                    url = f"http://127.0.0.1:{port}/api/realtime/webhook"
                    resp = await client.post(url, content=body, headers=headers)
                assert resp.status_code == 200 and resp.json()["accepted"] == "m1"
                journal = TurnJournal(db)
                owed = [o.msg_id for o in journal.owed()]
                journal.close()
                assert owed == ["m1"]  # written before the 200
            for _ in range(int(500 * tf)):
                if pub.finals() or (pub is pubs[0] and app[STATS_KEY]["publish_failed"]):
                    break
                await asyncio.sleep(0.01)
        finally:
            await runner.cleanup()
    assert pubs[0].finals() == [] and [f["id"] for f in pubs[1].finals()] == ["m1"]
    assert llms[0].runs == 1 and llms[1].runs == 0  # the restart replayed the stored reply
    assert pubs[1].keys[-1] == "m1:final"
    journal = TurnJournal(db)
    try:
        assert journal.owed() == []
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("room", "user", "granted", "status"),
    [
        ("travel:u2", "u1", None, 403),  # u1's message answered in u2's channel
        ("travel:u2", "u1", True, 403),  # no word makes another user's channel u1's
        ("room:lobby", "u1", None, 403),  # a shared room the realtime service did not vouch for
        ("room:lobby", "u1", "yes", 403),  # only the JSON value true is the word
        ("lobby", "u1", None, 403),  # a bare name that is not the user's
        ("room:lobby", "u1", True, 200),  # the realtime service checked the user's grants
        ("travel:u1", "u1", None, 200),  # the user's own channel
        ("u1", "u1", None, 200),  # the original's convention: the room names the user's agent
    ],
)
async def test_a_message_is_answered_only_in_a_room_its_user_belongs_to(
    worker: Any, room: str, user: str, granted: Any, status: int
) -> None:
    url, pub = await worker(stream=False)
    event = webhook_event("message", room=room, user_id=user, text="hotels in Paris", msg_id="m1")
    if granted is not None:
        event["roomGranted"] = granted
    body, headers = _signed(event)
    async with httpx.AsyncClient() as c:
        r = await c.post(url, content=body, headers=headers)
        health = (await c.get(url.replace("/api/realtime/webhook", "/healthz"))).json()
    assert r.status_code == status, r.text
    if status == 403:
        assert room in r.json()["error"] and pub.published == []
        assert health["stats"]["webhook_refused_room"] == 1
    else:
        [(channel, data)] = pub.published
        assert channel == room and data["userId"] == user


async def test_a_publish_proxy_message_for_another_users_channel_or_a_room_is_refused(
    worker: Any,
) -> None:
    from travelagent.config import API_KEY_ENV

    url, pub = await worker(stream=False)
    async with httpx.AsyncClient(headers={"X-API-Key": secret(API_KEY_ENV)}) as c:
        for channel in ("travel:u2", "room:lobby"):
            req = {"client": "c1", "user": "u1", "channel": channel,
                   "data": {"type": "message", "text": "hotels in Rome", "id": "p1"}}  # fmt: skip
            r = await c.post(url, json=req)
            assert r.status_code == 200 and r.json()["error"]["code"] == 103, r.text
        health = (await c.get(url.replace("/api/realtime/webhook", "/healthz"))).json()
    await asyncio.sleep(0.1)
    assert pub.published == [] and health["stats"]["proxy_refused_room"] == 2
