"""Idempotent publishing (``idempotency_key``): on the pure cache and hub, and over real
sockets with a worker whose publish answer is lost and retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm import make_llm
from travelagent.client.publisher import PublisherClient
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.history import DEFAULT_POLICIES, History
from travelagent.realtime.hub import Hub
from travelagent.realtime.idempotency import IdempotencyCache
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import Trace
from travelagent.worker.publish import HttpPublisher, PublishError
from travelagent.worker.turn import RealtimeTurn

API_KEY = "idempotency-test-api-key"
JWT_SECRET = "idempotency-test-jwt-secret-long-enough!"


class Sink:
    client_id, user = "c1", "u1"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


def test_the_cache_answers_a_key_it_has_seen_in_that_channel_until_the_ttl() -> None:
    cache = IdempotencyCache(ttl_s=300)
    cache.put("travel:u1", "m1:final", 7, "e", now_s=0)
    assert cache.get("travel:u1", "m1:final", now_s=299) == (7, "e")
    assert cache.get("travel:u2", "m1:final", now_s=299) is None  # keys are per channel
    assert cache.get("travel:u1", "m1:final", now_s=301) is None and len(cache) == 0


def test_the_cache_is_bounded_by_count() -> None:
    cache = IdempotencyCache(max_size=2)
    for i in range(3):
        cache.put("c", f"k{i}", i, "e", now_s=0)
    assert cache.get("c", "k0", now_s=0) is None and cache.get("c", "k2", now_s=0) == (2, "e")


def test_a_repeated_key_is_neither_stored_nor_delivered_and_answers_the_first_result() -> None:
    hub = Hub(History(DEFAULT_POLICIES))
    sink = Sink()
    hub.subscribe(sink, "travel:u1", join_leave=False)
    first = hub.publish("travel:u1", {"text": "a"}, api_recv_ns=1, idempotency_key="m1:final")
    again = hub.publish("travel:u1", {"text": "a"}, api_recv_ns=2, idempotency_key="m1:final")
    other = hub.publish("travel:u1", {"text": "b"}, api_recv_ns=3, idempotency_key="m2:final")
    assert again == first and other[0] == first[0] + 1
    assert len(sink.sent) == 2
    assert [p["data"]["text"] for p in hub.history_read("travel:u1", limit=10)["publications"]] == [
        "a",
        "b",
    ]
    assert hub.counters.duplicate_publications == 1


class LosingTransport(httpx.AsyncBaseTransport):
    """Delivers every request, but loses the answer to the first ``lose`` publishes whose key
    ends with ``suffix``: the realtime service published, the worker never heard."""

    def __init__(self, lose: int, suffix: str = ":final") -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lose, self.suffix = lose, suffix

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if self.lose and request.content.rstrip(b"}").endswith(f'{self.suffix}"'.encode()):
            self.lose -= 1
            await resp.aclose()
            raise httpx.ReadError("connection reset before the answer (test)", request=request)
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


async def history(base_url: str, channel: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as c:
        resp = await c.post(
            f"{base_url}/api/history",
            json={"channel": channel, "limit": 100},
            headers={"X-API-Key": API_KEY},
        )
    return [p["data"] for p in resp.json()["result"]["publications"]]


async def test_a_publish_whose_answer_was_lost_and_retried_is_one_publication_in_history(
    port: int, tmp_path: Path
) -> None:
    config = RealtimeConfig(port=port, jwt_secret=JWT_SECRET, api_key=API_KEY, webhook_url="")
    async with running_realtime(config) as rt:
        publisher = HttpPublisher(
            rt.base_url, API_KEY, pooled=True, timeout_s=5, transport=LosingTransport(lose=2)
        )
        directory = LocalAgentDirectory(
            tmp_path / "a.db", llm=make_llm("simulated", profile="instant")
        )
        turn = RealtimeTurn(
            agent=directory.get("u1"), publisher=publisher, channel="travel:u1", user_id="u1",
            msg_id="m1", text="hotels in Paris", trace=Trace.start("m1"), stream=True,
        )  # fmt: skip
        try:
            for _ in range(2):  # the answer is lost twice: each a PublishError, as the worker saw
                try:
                    await turn.run()
                except PublishError:
                    continue
                raise AssertionError("the lost answer was not noticed")
            await turn.run()  # the third try hears the answer
        finally:
            await publisher.aclose()
            await directory.close()
        pubs = await history(rt.base_url, "travel:u1")
        assert rt.service.hub.counters.duplicate_publications == 2
    finals = [p for p in pubs if p.get("complete")]
    assert len(finals) == 1 and "Paris" in finals[0]["text"]
    assert sum(1 for p in pubs if p.get("streaming")) == 1


async def test_the_publisher_socket_carries_the_key_too(port: int) -> None:
    config = RealtimeConfig(port=port, jwt_secret=JWT_SECRET, api_key=API_KEY, webhook_url="")
    async with running_realtime(config) as rt:
        pub = PublisherClient(rt.publisher_url, API_KEY)
        await pub.connect()
        try:
            results = [
                await pub.publish("travel:u1", {"text": "a"}, idempotency_key="k") for _ in range(3)
            ]
        finally:
            await pub.aclose()
        assert len({r["offset"] for r in results}) == 1
        assert len(await history(rt.base_url, "travel:u1")) == 1


def test_the_durable_cache_reads_back_unexpired_keys_and_drops_expired_ones(
    tmp_path: Path,
) -> None:
    from travelagent.realtime.idempotency import SqliteIdempotencyCache

    db = tmp_path / "rt.sqlite"
    cache = SqliteIdempotencyCache(db, ttl_s=900, now_s=1000.0)
    cache.put("travel:u1", "m1:final", 7, "e1", now_s=1000.0)
    cache.put("travel:u1", "m2:final", 8, "e1", now_s=1500.0)
    cache.close()
    again = SqliteIdempotencyCache(db, ttl_s=900, now_s=1899.0)
    assert again.loaded == 2 and again.get("travel:u1", "m1:final", now_s=1899.0) == (7, "e1")
    again.close()
    later = SqliteIdempotencyCache(db, ttl_s=900, now_s=1901.0)  # m1's key is 901 s old
    assert later.loaded == 1 and later.get("travel:u1", "m1:final", now_s=1901.0) is None
    assert later.get("travel:u1", "m2:final", now_s=1901.0) == (8, "e1")
    later.close()


async def test_a_publish_retried_after_a_realtime_restart_is_one_publication_in_history(
    port: int, tmp_path: Path
) -> None:
    config = RealtimeConfig(
        port=port,
        jwt_secret=JWT_SECRET,
        api_key=API_KEY,
        webhook_url="",
        history="sqlite",
        db_path=str(tmp_path / "rt.sqlite"),
    )
    body = {"channel": "travel:u1", "data": {"text": "final", "complete": True},
            "idempotency_key": "m1:final"}  # fmt: skip

    async def publish(rt: Any) -> dict[str, Any]:
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"{rt.base_url}/api/publish", json=body, headers={"X-API-Key": API_KEY}
            )
        assert r.status_code == 200, r.text
        return dict(r.json()["result"])

    async with running_realtime(config) as rt:
        first = await publish(rt)
        await rt.restart()  # a new service object reading the same file, on the same port
        assert rt.service.hub.counters.duplicate_publications == 0
        again = await publish(rt)  # the worker's retry: its first answer was lost
        assert rt.service.hub.counters.duplicate_publications == 1
        pubs = await history(rt.base_url, "travel:u1")
    assert again == first and first["offset"] == 1
    assert pubs == [{"text": "final", "complete": True}]


def test_a_key_ttl_shorter_than_the_webhook_tolerance_is_refused_at_start() -> None:
    import pytest

    from travelagent.realtime.service import RealtimeService

    with pytest.raises(ValueError, match="tolerance"):
        RealtimeService(RealtimeConfig(webhook_url="", idempotency_ttl_s=60))


async def test_a_publish_retried_after_the_service_process_was_killed_is_stored_once(
    port: int, tmp_path: Path, tf: float
) -> None:
    import asyncio
    import os
    import signal
    import sys

    env = {**os.environ, "TRAVELAGENT_API_KEY": API_KEY}
    args = [sys.executable, "-m", "travelagent", "serve", "realtime", "--port", str(port),
            "--webhook-url", "", "--history", "sqlite", "--db", str(tmp_path / "rt.sqlite"),
            "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    body = {"channel": "travel:u1", "data": {"text": "final"}, "idempotency_key": "m1:final"}

    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        async with httpx.AsyncClient() as http:
            for _ in range(int(300 * tf)):
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        return proc
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        proc.kill()
        raise AssertionError("the service never answered /healthz")

    async def publish() -> dict[str, Any]:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{base}/api/publish", json=body, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200, r.text
        return dict(r.json()["result"])

    proc = await start()
    try:
        first = await publish()
        proc.send_signal(signal.SIGKILL)  # no shutdown: only what was committed survives
        await proc.wait()
        proc = await start()
        again = await publish()
        pubs = await history(base, "travel:u1")
    finally:
        proc.kill()
        await proc.wait()
    assert again == first and pubs == [{"text": "final"}]


def test_keys_memory_let_go_are_found_in_the_file(tmp_path: Path) -> None:
    from travelagent.realtime.idempotency import SqliteIdempotencyCache

    cache = SqliteIdempotencyCache(tmp_path / "rt.sqlite", ttl_s=900, max_size=2, now_s=1000.0)
    for i in range(5):
        cache.put("travel:u1", f"m{i}:final", i + 1, "e1", now_s=1000.0 + i)
    assert len(cache) == 2  # memory holds the newest two
    assert cache.get("travel:u1", "m0:final", now_s=1010.0) == (1, "e1")
    assert cache.disk_hits == 1
    assert cache.get("travel:u1", "m0:final", now_s=1901.0) is None  # past the ttl
    assert cache.get("travel:u2", "m0:final", now_s=1010.0) is None  # per channel
    cache.close()
