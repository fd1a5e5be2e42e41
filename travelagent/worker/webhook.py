"""``POST /api/realtime/webhook``: the realtime service calls the worker.

The decisions (signature, event shape, de-duplication by ``webhook-id``, the publish proxy)
are pure code in ``intake.py``; this handler reads the body, carries out the decision and is
the one place that turns a ``TurnOrder`` into a ``RealtimeTurn``. ``after-publish`` mode
answers once the reply is published (a failed publish answers 502 so the realtime service
retries, and the retry re-publishes the remembered reply); ``ack-first`` answers 200 at once
and works in the background, retrying its publish.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from aiohttp import web

from travelagent.config import API_KEY_ENV, WEBHOOK_SECRET_ENV, secret
from travelagent.logsafe import esc
from travelagent.wire import jsoncodec
from travelagent.wire.trace import now_ns
from travelagent.worker.config import WorkerConfig
from travelagent.worker.intake import (
    MAX_WEBHOOK_BYTES,
    Deduplicator,
    Redeliver,
    Respond,
    StartTurn,
    TurnOrder,
    WebhookIntake,
)
from travelagent.worker.keys import (
    BACKGROUND,
    CONFIG,
    DIRECTORY,
    INTAKE,
    JOURNAL,
    PUBLISHER,
    STATS,
)
from travelagent.worker.publish import PublishError
from travelagent.worker.turn import RealtimeTurn
from travelagent.worker.webhook_log import WebhookLog

log = logging.getLogger(__name__)

BACKGROUND_PUBLISH_ATTEMPTS = 4


def _json(body: dict[str, Any], *, status: int = 200) -> web.Response:
    """A JSON answer encoded by the wire formats' encoder (orjson), not aiohttp's json.dumps."""
    return web.Response(body=jsoncodec.dumps_bytes(body), status=status,
                        content_type="application/json")  # fmt: skip


def make_intake(cfg: WorkerConfig, log: WebhookLog | None = None) -> WebhookIntake[RealtimeTurn]:
    """The intake; with ``log``, de-duplication records every new id there and asks it for the
    ids not held in memory (those earlier processes received included)."""
    dedup: Deduplicator[RealtimeTurn] = Deduplicator(
        max_size=cfg.webhook_dedup_size,
        ttl_s=cfg.webhook_dedup_ttl_s,
        persist=log.record if log is not None else None,
        lookup=log.lookup if log is not None else None,
        max_ids=cfg.webhook_dedup_memory,
        log_until_s=log.newest() if log is not None else None,
    )
    return WebhookIntake(
        webhook_secret=lambda: secret(WEBHOOK_SECRET_ENV),
        api_key=lambda: secret(API_KEY_ENV),
        tolerance_s=cfg.webhook_tolerance_s,
        ack_first=cfg.webhook_mode == "ack-first",
        default_stream=cfg.stream,
        process=cfg.process,
        dedup=dedup,
    )


def _turn(app: web.Application, order: TurnOrder) -> RealtimeTurn:
    return RealtimeTurn(
        agent=app[DIRECTORY].get(order.user_id),
        publisher=app[PUBLISHER],
        channel=order.channel,
        user_id=order.user_id,
        msg_id=order.msg_id,
        text=order.text,
        trace=order.trace,
        stream=order.stream,
        process=app[CONFIG].process,
    )


async def handle_realtime_webhook(request: web.Request) -> web.Response:
    stats = request.app[STATS]
    t_recv = now_ns()
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
        return _json({"error": "body too large"}, status=413)
    body = await request.read()
    intake = request.app[INTAKE]
    decision = intake.receive(request.headers, body, t_recv_ns=t_recv)
    if isinstance(decision, Respond):
        if decision.stat is not None:
            stats[decision.stat] += 1
        return _json(decision.body, status=decision.status)
    if isinstance(decision, Redeliver):
        stats["webhook_duplicates"] += 1
        return await _retry(request, decision.prior)
    assert isinstance(decision, StartTurn)
    turn = _turn(request.app, decision.order)
    if decision.webhook_id is not None:
        intake.dedup.remember(decision.webhook_id, turn)
        turn.on_published = _releaser(intake.dedup, decision.webhook_id)
    stats[decision.stat] += 1
    if decision.ack is not None:
        # "Accepted" is a promise nobody will check: keep it on disk before making it.
        try:
            await request.app[JOURNAL].owe(decision.order)
        except sqlite3.Error as err:
            log.error("could not journal turn %s: %s", esc(decision.order.msg_id), esc(err))
            if decision.webhook_id is not None:
                intake.dedup.forget(decision.webhook_id)  # so the retry starts it afresh
            return _json({"error": f"turn not stored: {err}"}, status=503)
        _background(request.app, turn, decision.order)
        return _json(decision.ack)
    return await _run_turn(turn)


def _releaser(dedup: Deduplicator[RealtimeTurn], webhook_id: str) -> Callable[[], None]:
    """Once the turn is published its id alone answers a redelivery: the de-duplicator then
    drops the turn (reply, trace, task) instead of holding it for the whole ttl."""

    def release() -> None:
        dedup.release(webhook_id)

    return release


async def _run_turn(turn: RealtimeTurn) -> web.Response:
    """Run the turn in this handler's own task, not one of its own (a task and a pass of the
    event loop less per message: aiohttp does not cancel a handler whose client went away),
    with a future a redelivery that comes meanwhile waits on."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    turn.task = done
    try:
        await turn.run()
    except Exception as err:
        done.set_exception(err)
        done.exception()  # retrieved: no redelivery may ever ask for it
        if isinstance(err, PublishError):
            return _json({"error": f"publish failed: {err}"}, status=502)
        raise
    except BaseException:
        done.cancel()
        raise
    done.set_result(None)
    return _json({"ok": True, "published": turn.msg_id})


async def _await_turn(turn: RealtimeTurn) -> web.Response:
    assert turn.task is not None
    try:
        # shield: a redelivery that gives up must not cancel the turn it waits on
        await asyncio.shield(turn.task)
    except PublishError as err:
        return _json({"error": f"publish failed: {err}"}, status=502)
    return _json({"ok": True, "published": turn.msg_id})


async def _retry(request: web.Request, turn: RealtimeTurn | None) -> web.Response:
    if turn is None or turn.published:
        return _json({"ok": True, "duplicate": True})
    if turn.task is not None and not turn.task.done():
        return await _await_turn(turn)
    if request.app[CONFIG].webhook_mode == "ack-first":
        return _json({"ok": True, "duplicate": True})
    return await _run_turn(turn)  # re-publishes the remembered reply


def _background(app: web.Application, turn: RealtimeTurn, order: TurnOrder) -> None:
    """Run a promised turn; once its final is published, the journal forgets it. If every
    attempt fails it stays owed, and the next start of the worker runs it again."""

    async def run() -> None:
        delay_s = 0.05
        for attempt in range(BACKGROUND_PUBLISH_ATTEMPTS):
            try:
                await turn.run()
                app[JOURNAL].settled(order)
                return
            except PublishError as err:
                log.warning(
                    "publish attempt %d for %s failed: %s", attempt + 1, esc(turn.msg_id), esc(err)
                )
                await asyncio.sleep(delay_s)
                delay_s *= 4
        app[STATS]["publish_failed"] += 1

    task = asyncio.create_task(run())
    turn.task = task
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)


async def resume_owed_turns(app: web.Application) -> None:
    """At start: run in the background every turn an earlier process promised and did not
    publish (``journal.py``). Each replays or resumes under its message-id key."""
    for order in app[JOURNAL].owed():
        turn = _turn(app, order)
        app[STATS]["turns_resumed"] += 1
        _background(app, turn, order)
