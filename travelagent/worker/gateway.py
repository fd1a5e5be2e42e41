"""``GET /api/gateway/ws``: the direct WebSocket path, client → worker → TravelAgent.

The socket is bound to one agent, chosen by ``userId`` in the query or in the first message.
Each valid message is handed to its agent as a task, so the reader keeps reading (and answering
bad frames at once) while the agent works; the agent's input gate keeps messages in order.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from travelagent.agent.base import AgentDirectory
from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace, now_ns
from travelagent.worker.config import WorkerConfig
from travelagent.worker.keys import CONFIG, DIRECTORY, ROOMS, STATS

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) above this; between the configured limit and this one the
# client gets an error frame and the socket stays open.
HARD_FRAME_CAP_FACTOR = 8


class SocketSink:
    """A ReplySink over one gateway socket; stamps ``worker.send`` on the final frame."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        lock: asyncio.Lock,
        *,
        user_id: str,
        msg_id: str,
        process: str,
    ) -> None:
        self.ws, self.lock = ws, lock
        self.user_id, self.msg_id, self.process = user_id, msg_id, process

    async def _send(self, frame: str) -> None:
        if self.ws.closed:
            return
        async with self.lock:
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                pass  # the client went away; nobody is left to tell

    async def start(self) -> None:
        await self._send(gw.stream_start_frame(user_id=self.user_id, msg_id=self.msg_id))

    async def chunk(self, text: str) -> None:
        await self._send(gw.chunk_frame(text, user_id=self.user_id, msg_id=self.msg_id))

    async def complete(self, text: str, trace: Trace | None) -> None:
        if trace is not None:
            trace.try_stamp("worker.send", self.process)
        await self._send(
            gw.complete_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )

    async def response(self, text: str, trace: Trace | None) -> None:
        if trace is not None:
            trace.try_stamp("worker.send", self.process)
        await self._send(
            gw.response_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )

    async def error(self, error: str, trace: Trace | None) -> None:
        if trace is not None:
            trace.try_stamp("worker.send", self.process)
        await self._send(
            gw.error_frame(error, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )


async def handle_gateway_websocket(request: web.Request) -> web.StreamResponse:
    cfg: WorkerConfig = request.app[CONFIG]
    directory: AgentDirectory = request.app[DIRECTORY]
    stats = request.app[STATS]
    bound_user = request.query.get("userId") or None
    if bound_user is not None and not gw.valid_user_id(bound_user):
        raise web.HTTPBadRequest(text="userId must be 1-128 printable characters, no '/'")
    room = request.query.get("room") or None
    if room is not None and not gw.valid_user_id(room):
        raise web.HTTPBadRequest(text="room must be 1-128 printable characters, no '/'")
    if room and bound_user:
        request.app[ROOMS].bind(bound_user, room, directory.get(bound_user))
    ws = web.WebSocketResponse(
        max_msg_size=cfg.max_frame_bytes * HARD_FRAME_CAP_FACTOR, heartbeat=30.0
    )
    await ws.prepare(request)
    stats["gateway_sockets"] += 1
    send_lock = asyncio.Lock()
    inflight: set[asyncio.Task[None]] = set()

    async def reject(reason: str, msg_id: str | None = None) -> None:
        stats["gateway_rejected"] += 1
        async with send_lock:
            await ws.send_str(gw.error_frame(reason, user_id=bound_user, msg_id=msg_id))

    try:
        async for msg in ws:
            t_recv = now_ns()
            if msg.type is WSMsgType.BINARY:
                await reject("binary frames are not supported; send JSON text frames")
                continue
            if msg.type is not WSMsgType.TEXT:
                continue  # close/ping handled by aiohttp
            try:
                cm = gw.parse_client_frame(msg.data, max_frame_bytes=cfg.max_frame_bytes)
            except gw.FrameError as err:
                await reject(str(err))
                continue
            user = bound_user or cm.user_id
            if user is None:
                await reject("userId required: in the query (?userId=...) or in the message")
                continue
            if bound_user is None:
                bound_user = user
                if room:
                    request.app[ROOMS].bind(user, room, directory.get(user))
            elif cm.user_id is not None and cm.user_id != bound_user:
                await reject(f"this socket is bound to userId {bound_user!r}", cm.id)
                continue
            if len(inflight) >= cfg.max_inflight_per_socket:
                await reject(
                    f"more than {cfg.max_inflight_per_socket} messages in flight on this socket",
                    cm.id,
                )
                continue
            trace = cm.trace or Trace.start(cm.id)
            msg_id = cm.id or trace.id
            trace.try_stamp("worker.recv", cfg.process, t_ns=t_recv)
            stream = cfg.stream if cm.stream is None else cm.stream
            sink = SocketSink(ws, send_lock, user_id=user, msg_id=msg_id, process=cfg.process)
            agent = directory.get(user)
            task = asyncio.create_task(agent.on_message(sink, cm.text, trace=trace, stream=stream))
            stats["gateway_messages"] += 1
            inflight.add(task)
            task.add_done_callback(inflight.discard)
    finally:
        # Replies still being produced are allowed to finish (their state commits), but with
        # the socket gone they have nowhere to go; wait for them so nothing is cut half-way.
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
        stats["gateway_sockets"] -= 1
    return ws
