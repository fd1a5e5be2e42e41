"""``POST /api/realtime/webhook``: the realtime service calls the worker.

Checks, in order: body size, Standard Webhooks signature and timestamp tolerance (401), JSON
shape (400), then de-duplication by ``webhook-id``: a retried webhook never makes a second agent
reply. ``after-publish`` mode answers once the reply is published (a failed publish answers 502
so the realtime service retries, and the retry re-publishes the remembered reply);
``ack-first`` answers 200 at once and works in the background, retrying its publish.

The same route takes a Centrifugo publish-proxy request (``{"client", "channel", "data", ...}``
authenticated by ``X-API-Key``), so a real Centrifugo can sit in front of the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from travelagent.config import API_KEY_ENV, WEBHOOK_SECRET_ENV, secret
from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace, TraceError, new_msg_id, now_ns
from travelagent.wire.webhooks import WebhookVerificationError, verify
from travelagent.worker.config import WorkerConfig
from travelagent.worker.keys import BACKGROUND, CONFIG, DEDUP, DIRECTORY, PUBLISHER, STATS
from travelagent.worker.publish import PublishError
from travelagent.worker.turn import RealtimeTurn

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1 << 20
BACKGROUND_PUBLISH_ATTEMPTS = 4


class WebhookDeduplicator:
    """Remembers recent webhook ids (bounded by count and age) and their turns."""

    def __init__(self, *, max_size: int = 100_000, ttl_s: float = 600.0) -> None:
        self.max_size, self.ttl_s = max_size, ttl_s
        self._seen: OrderedDict[str, tuple[float, RealtimeTurn | None]] = OrderedDict()

    def get(self, webhook_id: str) -> tuple[bool, RealtimeTurn | None]:
        self._expire()
        entry = self._seen.get(webhook_id)
        return (entry is not None, entry[1] if entry else None)

    def remember(self, webhook_id: str, turn: RealtimeTurn | None) -> None:
        self._seen[webhook_id] = (time.monotonic(), turn)
        self._seen.move_to_end(webhook_id)
        while len(self._seen) > self.max_size:
            self._seen.popitem(last=False)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        while self._seen:
            _, (t, _) = next(iter(self._seen.items()))
            if t >= cutoff:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def _bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def _parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("body is not valid JSON") from None
    if not isinstance(event, dict):
        raise ValueError("body must be a JSON object")
    if event.get("type") not in ("message", "presence", "connection"):
        raise ValueError("'type' must be one of message, presence, connection")
    room = event.get("room")
    if not isinstance(room, str) or not room or len(room) > 256:
        raise ValueError("'room' must be a non-empty string")
    return event


def _user_for(event: dict[str, Any]) -> str:
    user = event.get("userId")
    if user is None:  # as the original: the room stands in for a missing userId
        room = str(event["room"])
        user = room.split(":", 1)[1] if room.startswith("travel:") else room
    if not gw.valid_user_id(user):
        raise ValueError("'userId' must be 1-128 printable characters, no '/'")
    return str(user)


async def handle_realtime_webhook(request: web.Request) -> web.Response:
    cfg: WorkerConfig = request.app[CONFIG]
    stats = request.app[STATS]
    t_recv = now_ns()
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
        return web.json_response({"error": "body too large"}, status=413)
    body = await request.read()
    if "webhook-signature" not in request.headers and "webhook-id" not in request.headers:
        return await _handle_publish_proxy(request, body, t_recv)
    try:
        verify(
            secret(WEBHOOK_SECRET_ENV),
            request.headers,
            body,
            tolerance_s=cfg.webhook_tolerance_s,
        )
    except WebhookVerificationError as err:
        stats["webhook_unauthorized"] += 1
        return web.json_response({"error": f"webhook verification failed: {err}"}, status=401)
    webhook_id = request.headers["webhook-id"]
    try:
        event = _parse_event(body)
        user = _user_for(event)
    except ValueError as err:
        stats["webhook_bad"] += 1
        return _bad(str(err))
    dedup: WebhookDeduplicator = request.app[DEDUP]
    seen, prior = dedup.get(webhook_id)
    if seen:
        stats["webhook_duplicates"] += 1
        return await _retry(request, prior)
    if event["type"] != "message":
        dedup.remember(webhook_id, None)
        stats[f"webhook_{event['type']}"] += 1
        return web.json_response({"ok": True, "type": event["type"]})
    message = event.get("message")
    if not isinstance(message, dict):
        return _bad("'message' must be an object with 'text'")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return _bad("'message.text' must be a non-empty string")
    try:
        trace = Trace.from_wire_or_none(message.get("trace"))
    except TraceError as err:
        return _bad(f"bad trace: {err}")
    msg_id = message.get("id") if isinstance(message.get("id"), str) else None
    trace = trace or Trace.start(msg_id)
    msg_id = msg_id or trace.id
    trace.try_stamp("worker.recv", cfg.process, t_ns=t_recv)
    stream = cfg.stream if not isinstance(message.get("stream"), bool) else message["stream"]
    turn = RealtimeTurn(
        agent=request.app[DIRECTORY].get(user),
        publisher=request.app[PUBLISHER],
        channel=str(event["room"]),
        user_id=user,
        msg_id=msg_id,
        text=text,
        trace=trace,
        stream=stream,
        process=cfg.process,
    )
    dedup.remember(webhook_id, turn)
    stats["webhook_messages"] += 1
    if cfg.webhook_mode == "ack-first":
        _background(request.app, turn)
        return web.json_response({"ok": True, "accepted": msg_id})
    turn.task = asyncio.create_task(turn.run())
    return await _await_turn(turn)


async def _await_turn(turn: RealtimeTurn) -> web.Response:
    assert turn.task is not None
    try:
        # shield: a realtime service that gives up on us must not cancel the agent's turn
        await asyncio.shield(turn.task)
    except PublishError as err:
        return web.json_response({"error": f"publish failed: {err}"}, status=502)
    return web.json_response({"ok": True, "published": turn.msg_id})


async def _retry(request: web.Request, turn: RealtimeTurn | None) -> web.Response:
    if turn is None or turn.published:
        return web.json_response({"ok": True, "duplicate": True})
    if turn.task is not None and not turn.task.done():
        return await _await_turn(turn)
    if request.app[CONFIG].webhook_mode == "ack-first":
        return web.json_response({"ok": True, "duplicate": True})
    turn.task = asyncio.create_task(turn.run())  # re-publishes the remembered reply
    return await _await_turn(turn)


def _background(app: web.Application, turn: RealtimeTurn) -> None:
    async def run() -> None:
        delay_s = 0.05
        for attempt in range(BACKGROUND_PUBLISH_ATTEMPTS):
            try:
                await turn.run()
                return
            except PublishError as err:
                log.warning("publish attempt %d for %s failed: %s", attempt + 1, turn.msg_id, err)
                await asyncio.sleep(delay_s)
                delay_s *= 4
        app[STATS]["publish_failed"] += 1

    task = asyncio.create_task(run())
    turn.task = task
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)


async def _handle_publish_proxy(request: web.Request, body: bytes, t_recv: int) -> web.Response:
    """Centrifugo's publish proxy: allow the publication, answer the agent in the background."""
    if request.headers.get("X-API-Key") != secret(API_KEY_ENV):
        return web.json_response(
            {"error": "unsigned request: expected Standard Webhooks headers or X-API-Key"},
            status=401,
        )
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return _bad("body is not valid JSON")
    if not isinstance(req, dict) or not isinstance(req.get("channel"), str):
        return _bad("publish proxy request needs 'channel' and 'data'")
    data = req.get("data")
    if not isinstance(data, dict) or data.get("type") != "message":
        return web.json_response({"result": {}})  # not for the agent: let it through
    text = data.get("text")
    user = req.get("user") or data.get("userId")
    if not isinstance(text, str) or not text.strip() or not gw.valid_user_id(user):
        return web.json_response({"error": {"code": 107, "message": "bad request"}})
    try:
        trace = Trace.from_wire_or_none(data.get("trace"))
    except TraceError:
        trace = None
    raw_id = data.get("id")
    msg_id = raw_id if isinstance(raw_id, str) and raw_id else new_msg_id()
    trace = trace or Trace.start(msg_id)
    cfg: WorkerConfig = request.app[CONFIG]
    trace.try_stamp("worker.recv", cfg.process, t_ns=t_recv)
    turn = RealtimeTurn(
        agent=request.app[DIRECTORY].get(str(user)),
        publisher=request.app[PUBLISHER],
        channel=req["channel"],
        user_id=str(user),
        msg_id=msg_id,
        text=text,
        trace=trace,
        stream=cfg.stream,
        process=cfg.process,
    )
    request.app[STATS]["proxy_messages"] += 1
    _background(request.app, turn)
    return web.json_response({"result": {}})
