"""``/connection/websocket``: the aiohttp adapter around one pure ``ClientSession``.

The adapter reads frames and hands each one to the session with its arrival time, then does
what the session asks: whatever the session queued is written when the work that queued it
ends (``output.py``: once this frame, or the publisher-socket frame that fanned out to it, has
been served), several messages in one WebSocket frame, one write; a socket whose send buffer
is over ``WRITE_BUFFER_LIMIT_BYTES`` is written by a writer task that waits for it to drain
instead, so a slow client's output stays in its session's bounded queue. Webhooks go to the
sender; the ping timer and the token expiry call back into the session; a close request
flushes the queue and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import WSMsgType, web

from travelagent.realtime.output import text_frame
from travelagent.realtime.service import SERVICE, RealtimeService
from travelagent.realtime.session import (
    ArmExpiry,
    ClientSession,
    CloseConnection,
    SendWebhook,
    StartPinger,
)
from travelagent.realtime.webhook_sender import WebhookJob, WebhookSender
from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import now_ns

# A client socket's unsent bytes past which output waits for it to drain (the writer task).
WRITE_BUFFER_LIMIT_BYTES = 64 * 1024


def _room_check(sender: WebhookSender) -> Callable[[int], bool]:
    def room(pending: int) -> bool:
        if sender.has_room(extra=pending):
            return True
        sender.counters.rejected_full += 1
        return False

    return room


class SessionSocket:
    """Drives one session over one aiohttp WebSocket."""

    def __init__(
        self,
        service: RealtimeService,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.service, self.ws = service, ws
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._writer_busy = False  # the writer task is writing (and maybe waiting for a drain)
        sender = service.webhooks
        self._ready = asyncio.Event()
        self.session = ClientSession(
            service.hub,
            service.config,
            webhook_room=None if sender is None else _room_check(sender),
            wake=self._wake,
            per_user=service.per_user,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        self._tasks.append(asyncio.create_task(self._writer()))
        connect_timeout_s = self.service.config.connect_timeout_s
        if connect_timeout_s > 0:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(connect_timeout_s, self._connect_deadline)
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    self.session.receive_text(msg.data, now_ns())
                elif msg.type == WSMsgType.BINARY:
                    self.session.receive_binary()
                # ERROR (e.g. a frame over max_msg_size): aiohttp already closed with 1009.
                self._do_actions()
                self.service.output.flush()  # the replies and pushes this frame made
                if self.session.closing:
                    break
        finally:
            for t in self._tasks:
                t.cancel()
            if self._expiry is not None:
                self._expiry.cancel()
            if self._deadline is not None:
                self._deadline.cancel()
            self.session.connection_lost()
            self._do_actions(socket_gone=True)
            if self._close_task is not None:
                await self._close_task

    def _do_actions(self, *, socket_gone: bool = False) -> None:
        for action in self.session.actions_to_do():
            if socket_gone and not isinstance(action, SendWebhook):
                continue  # no timers or closing for a socket that is already gone
            if isinstance(action, SendWebhook):
                assert self.service.webhooks is not None
                self.service.webhooks.offer(WebhookJob(event=action.event, trace=action.trace))
            elif isinstance(action, StartPinger):
                self._tasks.append(asyncio.create_task(self._pinger(action.interval_s)))
            elif isinstance(action, ArmExpiry):
                loop = asyncio.get_running_loop()
                self._expiry = loop.call_later(action.delay_s, self._expired)
            elif isinstance(action, CloseConnection) and self._close_task is None:
                message = action.reason.encode()
                self._close_task = asyncio.create_task(self._close(action.code, message))

    def _wake(self) -> None:
        self.service.output.mark(self)
        if self.session.closing and self._close_task is None:
            # A close asked for by a hub push (a slow consumer) must not wait for the writer,
            # which may be the very thing that is stuck.
            asyncio.get_running_loop().call_soon(self._do_actions)

    def _connect_deadline(self) -> None:
        self.session.connect_deadline_passed()
        self._do_actions()

    def _expired(self) -> None:
        self.session.token_expired()
        self._do_actions()

    def flush(self) -> None:
        """Write what the session queued, now, unless the socket must drain first."""
        transport = self._transport
        if (
            transport is None
            or self._writer_busy
            or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT_BYTES
        ):
            self._ready.set()  # the writer task writes it, waiting for the drain
            return
        if transport.is_closing() or self.ws.closed:
            return  # the close (or the writer, if the peer went) deals with what is left
        batch = self.session.data_to_send()
        if batch:
            transport.write(text_frame(cf.encode(batch).encode()))

    async def _writer(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = self.session.data_to_send()
            if batch:
                self._writer_busy = True
                try:
                    await self.ws.send_str(cf.encode(batch))
                except (ConnectionError, RuntimeError):
                    return
                finally:
                    self._writer_busy = False

    async def _close(self, code: int, message: bytes) -> None:
        # Flush what is queued (e.g. the error reply explaining the close) before closing.
        batch = self.session.data_to_send()
        if batch:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(cf.encode(batch))
        await self.ws.close(code=code, message=message)

    async def _pinger(self, interval_s: float) -> None:
        while not self.session.closing:
            await asyncio.sleep(interval_s)
            self.session.ping_due()
            self._do_actions()


async def handle_client_websocket(request: web.Request) -> web.WebSocketResponse:
    service: RealtimeService = request.app[SERVICE]
    address = request.remote or ""
    if not service.per_address.acquire(address):
        service.hub.counters.refused_per_address += 1
        raise web.HTTPTooManyRequests(text="too many connections from this address")
    try:
        return await _serve_client(service, request)
    finally:
        service.per_address.release(address)


async def _serve_client(service: RealtimeService, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        max_msg_size=service.config.max_frame_bytes, autoping=True, compress=False
    )
    await ws.prepare(request)
    socket = SessionSocket(service, ws, request.transport)
    service.sockets.add(ws)
    try:
        await socket.run()
    finally:
        service.sockets.discard(ws)
        if not ws.closed:
            await ws.close()
    return ws
