"""``GET /api/gateway/ws``: the direct WebSocket path, client → worker → TravelAgent.

The adapter around ``GatewaySession`` (``gateway_session.py``), which holds the rules: the
socket is bound to one agent, chosen by ``userId`` in the query or in the first message, with
a cap on messages in flight. Each accepted message is handed to its agent as a task, so the
reader keeps reading (and answering bad frames at once) while the agent works; the agent's
input gate keeps messages in order.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from travelagent.agent.base import AgentDirectory
from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace, now_ns
from travelagent.worker.config import WorkerConfig
from travelagent.worker.gateway_session import Accept, GatewaySession, QueryError, Refuse
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
    try:
        user_id, room = GatewaySession.parse_query(request.query)
    except QueryError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    session = GatewaySession(
        user_id=user_id,
        room=room,
        max_frame_bytes=cfg.max_frame_bytes,
        max_inflight=cfg.max_inflight_per_socket,
        default_stream=cfg.stream,
        process=cfg.process,
    )
    if (binding := session.initial_room_binding()) is not None:
        request.app[ROOMS].bind(binding[0], binding[1], directory.get(binding[0]))
    ws = web.WebSocketResponse(
        max_msg_size=cfg.max_frame_bytes * HARD_FRAME_CAP_FACTOR, heartbeat=30.0
    )
    await ws.prepare(request)
    stats["gateway_sockets"] += 1
    send_lock = asyncio.Lock()
    inflight: set[asyncio.Task[None]] = set()

    try:
        async for msg in ws:
            t_recv = now_ns()
            if msg.type is WSMsgType.BINARY:
                decision: Accept | Refuse = session.receive_binary()
            elif msg.type is WSMsgType.TEXT:
                decision = session.receive_text(msg.data, t_recv, inflight=len(inflight))
            else:
                continue  # close/ping handled by aiohttp
            if decision.join_room is not None:
                user = decision.user_id
                assert user is not None
                request.app[ROOMS].bind(user, decision.join_room, directory.get(user))
            if isinstance(decision, Refuse):
                stats["gateway_rejected"] += 1
                frame = gw.error_frame(
                    decision.reason, user_id=decision.user_id, msg_id=decision.msg_id
                )
                async with send_lock:
                    await ws.send_str(frame)
                continue
            sink = SocketSink(
                ws, send_lock, user_id=decision.user_id, msg_id=decision.msg_id, process=cfg.process
            )
            agent = directory.get(decision.user_id)
            task = asyncio.create_task(
                agent.on_message(
                    sink,
                    decision.text,
                    trace=decision.trace,
                    stream=decision.stream,
                    msg_id=decision.msg_id,
                )
            )
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
