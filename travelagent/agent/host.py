"""The separate agent host: TravelAgents behind HTTP, so agent placement is a variable.

Routes:
- ``GET /healthz``: ``{"ok": true, "service": "agents", "agents": N, "refused_unauthorized":
  N, "refused_busy": N, "refused_inflight": N}``. Every other route needs ``Authorization:
  Bearer <token>`` (``travelagent.http_auth``). Bounds (``travelagent.limits``): bodies past
  the frame cap get 413; requests (WebSockets included) past ``max_concurrent`` at once get
  503; a WebSocket message past ``MAX_INFLIGHT_PER_SOCKET`` in flight gets an error frame;
  the runner's ``keepalive_timeout`` closes a connection that has not finished its headers.
- ``GET /agents/TravelAgent/{name}``: a WebSocket speaking the gateway wire format
  (``travelagent.wire.gateway``): message frames in; response, streaming/chunk/complete or
  error frames out, each final frame carrying the trace back.
- ``POST /agents/TravelAgent/{name}/rpc``: the agent RPC, its wire format in
  ``travelagent.wire.agent_rpc`` (shared with the caller, ``agent/remote.py``). A final object
  may carry ``"events"``: the agent's itinerary events since the last reply (see
  ``EventMailbox``).
- ``POST /agents/TravelAgent/{name}/replies``: the committed replies a reconnecting gateway
  client missed (``agent_rpc.REPLIES_ROUTE``; 404 for a message id the agent does not know).

A reply to a client that has gone away is dropped, not raised: the turn still commits, as a
Durable Object keeps running after its caller disconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from contextlib import aclosing

from aiohttp import WSMsgType, web

from travelagent.agent.base import AgentEvent
from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.travel_agent import AgentError, TravelAgent
from travelagent.agent.turns import UnknownMessage
from travelagent.http_auth import require_bearer
from travelagent.limits import INTERNAL_MAX_CONCURRENT, ConcurrencyLimit
from travelagent.logsafe import esc
from travelagent.wire import agent_rpc as rpc
from travelagent.wire import gateway
from travelagent.wire.trace import Trace

log = logging.getLogger(__name__)

DIRECTORY: web.AppKey[LocalAgentDirectory] = web.AppKey("directory", LocalAgentDirectory)
STREAM_DEFAULT: web.AppKey[bool] = web.AppKey("stream_default", bool)
MAX_FRAME_BYTES: web.AppKey[int] = web.AppKey("max_frame_bytes", int)
REFUSED: web.AppKey[list[int]] = web.AppKey("refused_unauthorized", list)
BUSY: web.AppKey[ConcurrencyLimit] = web.AppKey("busy", ConcurrencyLimit)
AGENT_ROUTE = rpc.AGENT_ROUTE
# Messages one WebSocket may have in flight at once, as the gateway's default.
MAX_INFLIGHT_PER_SOCKET = 64


class WebSocketSink:
    """``ReplySink`` writing gateway frames for one message to one socket."""

    def __init__(self, ws: web.WebSocketResponse, *, user_id: str | None, msg_id: str | None):
        self.ws = ws
        self.user_id = user_id
        self.msg_id = msg_id

    async def _send(self, frame: str) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(frame)
        except ConnectionError:
            log.debug("client left before frame for %s", esc(self.msg_id))

    async def start(self) -> None:
        await self._send(gateway.stream_start_frame(user_id=self.user_id, msg_id=self.msg_id))

    async def chunk(self, text: str) -> None:
        await self._send(gateway.chunk_frame(text, user_id=self.user_id, msg_id=self.msg_id))

    async def complete(self, text: str, trace: Trace | None) -> None:
        frame = gateway.complete_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        await self._send(frame)

    async def response(self, text: str, trace: Trace | None) -> None:
        frame = gateway.response_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        await self._send(frame)

    async def error(self, error: str, trace: Trace | None) -> None:
        frame = gateway.error_frame(error, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        await self._send(frame)


class EventMailbox:
    """Itinerary events of the host's agents, held until an RPC reply carries them back.

    The caller (a ``RemoteAgentDirectory``) hands them to its own listeners, so the hybrid's
    room announcements work with agents in a separate host too. Events leave in commit order,
    each once; one may ride on the reply to a later message of the same agent.
    """

    def __init__(self) -> None:
        self._events: dict[str, list[AgentEvent]] = {}
        # By instance: an agent released by the directory's cap and made again is listened to.
        self._listening: weakref.WeakSet[TravelAgent] = weakref.WeakSet()

    def agent(self, directory: LocalAgentDirectory, name: str) -> TravelAgent:
        agent = directory.get(name)
        if agent not in self._listening:
            self._listening.add(agent)
            box = self._events.setdefault(name, [])

            async def collect(event: AgentEvent) -> None:
                box.append(event)

            agent.add_listener(collect)
        return agent

    async def take(self, agent: TravelAgent) -> list[AgentEvent]:
        await agent.flush_listeners()
        box = self._events.get(agent.name, [])
        out = list(box)
        box.clear()
        return out


MAILBOX: web.AppKey[EventMailbox] = web.AppKey("mailbox", EventMailbox)


def _agent_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not gateway.valid_user_id(name):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "agent name must be 1-128 printable characters"}),
            content_type="application/json",
        )
    return name


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "ok": True,
            "service": "agents",
            "agents": len(request.app[DIRECTORY]),
            "refused_unauthorized": request.app[REFUSED][0],
            "refused_busy": request.app[BUSY].refused,
            "refused_inflight": request.app[BUSY].refused_inflight,
            "agents_released": request.app[DIRECTORY].released,
        }
    )


async def agent_websocket(request: web.Request) -> web.WebSocketResponse:
    name = _agent_name(request)
    agent = request.app[DIRECTORY].get(name)
    stream_default = request.app[STREAM_DEFAULT]
    max_frame_bytes = request.app[MAX_FRAME_BYTES]
    ws = web.WebSocketResponse(max_msg_size=max_frame_bytes + 1024)
    await ws.prepare(request)
    pending: set[asyncio.Task[None]] = set()
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        try:
            parsed = gateway.parse_client_frame(msg.data, max_frame_bytes=max_frame_bytes)
        except gateway.FrameError as err:
            await ws.send_str(gateway.error_frame(str(err)))
            continue
        if len(pending) >= MAX_INFLIGHT_PER_SOCKET:  # as the gateway: refused, never queued
            request.app[BUSY].refused_inflight += 1
            reason = f"more than {MAX_INFLIGHT_PER_SOCKET} messages in flight on this socket"
            await ws.send_str(gateway.error_frame(reason, user_id=parsed.user_id, msg_id=parsed.id))
            continue
        sink = WebSocketSink(ws, user_id=parsed.user_id, msg_id=parsed.id)
        stream = stream_default if parsed.stream is None else parsed.stream
        # One task per message: each queues at the agent's input gate in arrival order (the
        # task's first step is the gate), and this loop keeps reading the socket meanwhile.
        task = asyncio.create_task(
            agent.on_message(sink, parsed.text, trace=parsed.trace, stream=stream, msg_id=parsed.id)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return ws


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def agent_rpc(request: web.Request) -> web.StreamResponse:
    name = _agent_name(request)
    try:
        req = rpc.parse_request(await request.json())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad_request("body must be a JSON object")
    except rpc.RpcError as err:
        return _bad_request(str(err))
    mailbox = request.app[MAILBOX]
    agent = mailbox.agent(request.app[DIRECTORY], name)
    text, trace = req.text, req.trace
    if not req.stream:
        received = trace.copy() if trace else None  # a failure returns the trace as it came
        try:
            reply = await agent.handle_message(text, trace=trace, msg_id=req.msg_id)
        except AgentError as err:
            return web.json_response(rpc.failure_body(str(err), received), status=500)
        return web.json_response(rpc.reply_body(reply, trace, await mailbox.take(agent)))
    resp = web.StreamResponse(headers={"Content-Type": rpc.CONTENT_TYPE_NDJSON})
    await resp.prepare(request)
    parts: list[str] = []
    error: str | None = None
    caller_gone = False
    try:
        async with aclosing(agent.stream_message(text, trace=trace, msg_id=req.msg_id)) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
                if caller_gone:
                    continue
                try:
                    await resp.write(rpc.chunk_line(chunk))
                except ConnectionError:
                    # The caller went (its connection reset): the turn still runs to its
                    # commit, so the caller's retry of this msg id joins or replays it.
                    caller_gone = True
    except AgentError as err:
        error = str(err)
    if caller_gone:
        return resp  # the events stay for the next reply that can carry them
    events = await mailbox.take(agent)
    if error is None:
        await resp.write(rpc.done_line("".join(parts), trace, events))
    else:
        await resp.write(rpc.error_line(error, trace, events))
    await resp.write_eof()
    return resp


async def agent_replies(request: web.Request) -> web.Response:
    """The committed replies a reconnecting gateway client missed (``wire.agent_rpc``)."""
    name = _agent_name(request)
    try:
        after, ids = rpc.parse_replies_request(await request.json())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad_request("body must be a JSON object")
    except rpc.RpcError as err:
        return _bad_request(str(err))
    agent = request.app[DIRECTORY].get(name)
    try:
        found = await agent.replies_after(after, ids)
    except UnknownMessage as err:
        return web.json_response({"error": str(err)}, status=404)
    except AgentError as err:
        return web.json_response({"error": str(err)}, status=500)
    return web.json_response(
        rpc.replies_body([(r.msg_id, r.user_seq, r.reply) for r in found.replies], found.pending)
    )


def create_app(
    directory: LocalAgentDirectory,
    *,
    stream_default: bool = False,
    max_frame_bytes: int = gateway.DEFAULT_MAX_FRAME_BYTES,
    token: str | None = None,
    max_concurrent: int = 4 * INTERNAL_MAX_CONCURRENT,
) -> web.Application:
    """The agent host over ``directory`` (which the app closes on cleanup). Callers need
    ``token`` (default: ``TRAVELAGENT_AGENT_HOST_TOKEN``, or its development value); at most
    ``max_concurrent`` requests are served at once (0: no limit)."""
    from travelagent.config import AGENT_HOST_TOKEN_ENV, secret

    refused = [0]

    def count() -> None:
        refused[0] += 1

    busy = ConcurrencyLimit(max_concurrent)
    app = web.Application(
        client_max_size=max_frame_bytes + 4096,
        middlewares=[
            require_bearer(token or secret(AGENT_HOST_TOKEN_ENV), refused=count),
            busy.middleware(),
        ],
    )
    app[REFUSED] = refused
    app[BUSY] = busy
    app[DIRECTORY] = directory
    app[STREAM_DEFAULT] = stream_default
    app[MAX_FRAME_BYTES] = max_frame_bytes
    app[MAILBOX] = EventMailbox()
    app.router.add_get("/healthz", healthz)
    app.router.add_get(AGENT_ROUTE, agent_websocket)
    app.router.add_post(AGENT_ROUTE + "/rpc", agent_rpc)
    app.router.add_post(rpc.REPLIES_ROUTE, agent_replies)

    async def close_directory(app: web.Application) -> None:
        await app[DIRECTORY].close()

    app.on_cleanup.append(close_directory)
    return app
