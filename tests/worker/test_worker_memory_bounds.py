"""What the worker holds per message stays bounded: the webhook de-duplicator keeps only ids
once a turn is published, and the replay traces are capped per user (the soak, docs/chaos.md,
measures the effect on the whole process)."""

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
from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import encode_event, signed_headers, webhook_event
from travelagent.worker.app import create_app
from travelagent.worker.config import WorkerConfig
from travelagent.worker.gateway import ReplayTraces
from travelagent.worker.intake import Deduplicator
from travelagent.worker.keys import DIRECTORY, INTAKE
from travelagent.worker.publish import PublishError


class FlakyPublisher:
    """Records finals; fails the first ``fail_first`` publications."""

    mode = "test"

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first, self.calls = fail_first, 0
        self.finals: list[dict[str, Any]] = []

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise PublishError("realtime unreachable (test)")
        self.finals.append(json.loads(json.dumps(data)))
        return {}

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def worker(port: int, tmp_path: Path) -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(**config: Any) -> tuple[str, FlakyPublisher, web.Application]:
        pub = FlakyPublisher(config.pop("fail_first", 0))
        cfg = WorkerConfig(port=port, db_path=tmp_path / "w.db", stream=False, **config)
        directory = LocalAgentDirectory(cfg.db_path, llm=make_llm("simulated", profile="instant"))
        app = create_app(cfg, directory=directory, publisher=pub)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/api/realtime/webhook", pub, app

    yield start
    for r in runners:
        await r.cleanup()


def _signed(msg_id: str) -> tuple[bytes, dict[str, str]]:
    tr = Trace.start(msg_id)
    tr.stamp("client.send", "client")
    event = webhook_event("message", room="travel:u1", user_id="u1", text="hotels in Paris",
                          msg_id=msg_id, trace=tr)  # fmt: skip
    body = encode_event(event)
    return body, signed_headers(secret(WEBHOOK_SECRET_ENV), body)


async def test_a_published_turn_is_let_go_and_its_redelivery_is_still_a_duplicate(
    worker: Any,
) -> None:
    url, pub, app = await worker()
    dedup = app[INTAKE].dedup
    body, headers = _signed("m1")
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, content=body, headers=headers)).status_code == 200
        webhook_id = headers["webhook-id"]
        assert dedup.get(webhook_id) == (True, None)  # the id kept, the turn dropped
        again = await c.post(url, content=body, headers=headers)
    assert again.status_code == 200 and again.json().get("duplicate") is True
    assert len(pub.finals) == 1


async def test_a_turn_whose_publish_failed_is_kept_for_the_retry(worker: Any) -> None:
    url, pub, app = await worker(fail_first=1)
    dedup = app[INTAKE].dedup
    body, headers = _signed("m1")
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, content=body, headers=headers)).status_code == 502
        seen, turn = dedup.get(headers["webhook-id"])
        assert seen and turn is not None and turn.reply  # the reply, to publish again
        assert (await c.post(url, content=body, headers=headers)).status_code == 200
    assert dedup.get(headers["webhook-id"]) == (True, None)
    assert [f["id"] for f in pub.finals] == ["m1"]


async def test_ack_first_lets_go_of_the_turn_once_published(worker: Any) -> None:
    url, pub, app = await worker(webhook_mode="ack-first")
    dedup = app[INTAKE].dedup
    body, headers = _signed("m1")
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, content=body, headers=headers)).status_code == 200
    for _ in range(300):
        if pub.finals:
            break
        await asyncio.sleep(0.01)
    assert len(pub.finals) == 1
    assert dedup.get(headers["webhook-id"]) == (True, None)


def test_release_keeps_the_id_and_unknown_ids_are_ignored() -> None:
    d: Deduplicator[str] = Deduplicator(clock_s=lambda: 100.0)
    d.remember("a", "turn")
    d.release("a")
    d.release("never-seen")
    assert d.get("a") == (True, None) and d.get("never-seen") == (False, None)
    assert len(d) == 1


def _trace(msg_id: str) -> Trace:
    t = Trace.start(msg_id)
    t.stamp("worker.send", "worker")
    return t


def test_replay_traces_are_capped_per_user_and_in_all() -> None:
    traces = ReplayTraces(max_entries=5, per_user=3)
    for i in range(10):
        traces.keep("u1", f"m{i}", _trace(f"m{i}"))
    assert len(traces) == 3  # a steady user holds per_user traces, not one per message
    assert traces.get("u1", "m6") is None and traces.get("u1", "m9") is not None
    for i in range(3):
        traces.keep("u2", f"n{i}", _trace(f"n{i}"))
    assert len(traces) == 5  # the cap in all took u1's oldest first
    assert traces.get("u1", "m7") is None and traces.get("u1", "m8") is not None
    assert traces.get("u2", "n0") is not None
    traces.keep("u2", "n0", _trace("n0"))  # kept again: not counted twice
    assert len(traces) == 5
    assert traces.get("nobody", "m1") is None
    got = traces.get("u1", "m9")
    assert got is not None and [s[0] for s in got.stamps] == ["worker.send"]
    with pytest.raises(ValueError):
        ReplayTraces(per_user=0)


async def test_a_redelivery_after_memory_let_its_id_go_replays_and_never_runs_again(
    worker: Any,
) -> None:
    url, pub, app = await worker(webhook_dedup_memory=2)
    dedup = app[INTAKE].dedup
    first = _signed("m1")
    async with httpx.AsyncClient() as c:
        assert (await c.post(url, content=first[0], headers=first[1])).status_code == 200
        for i in range(2, 6):
            body, headers = _signed(f"m{i}")
            assert (await c.post(url, content=body, headers=headers)).status_code == 200
        assert len(dedup) == 2 and dedup.unsettled == 0
        # Give the background log writer its moment, then redeliver m1's webhook.
        for _ in range(100):
            if dedup.lookup is not None and dedup.lookup(first[1]["webhook-id"]) is not None:
                break
            await asyncio.sleep(0.01)
        again = await c.post(url, content=first[0], headers=first[1])
    assert again.status_code == 200
    directory = app[DIRECTORY]
    messages = await directory.store.messages("u1")
    assert len(messages) == 2 * 5  # five turns, m1's not run twice
    m1 = [f for f in pub.finals if f["id"] == "m1"]
    assert len(m1) == 2 and m1[0]["text"] == m1[1]["text"]  # the stored reply, published again
