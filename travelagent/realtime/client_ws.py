"""``/connection/websocket``: the aiohttp adapter around one pure ``ClientSession``.

The adapter reads frames and hands each one to the session with its arrival time, then does
what the session asks: whatever the session queued is written when the work that queued it
ends (``output.py``: once this frame, or the publisher-socket frame that fanned out to it, has
been served), several messages in one WebSocket frame, one write; a socket whose send buffer
is over ``WRITE_BUFFER_LIMIT_BYTES`` is written by a writer task that waits for it to drain
instead, so a slow client's output stays in its session's bounded queue. Webhooks go to the
sender; the ping timer and the token expiry call back into the session; a close request
flushes the queue and closes.

An idle socket holds as little as it can (docs/bench.md, "Memory"): one task (the reader) and
one timer handle. The writer task exists only while a socket must drain (started by ``flush``,
ended when the queue is empty). The ping and the token expiry share the one timer, armed for
whichever is due first and re-armed after each ping, not a task sleeping in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
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


# One room check per sender, shared by its sessions (not a closure per socket).
_ROOM_CHECKS: weakref.WeakKeyDictionary[WebhookSender, Callable[[int], bool]] = (
    weakref.WeakKeyDictionary()
)


def _shared_room_check(sender: WebhookSender) -> Callable[[int], bool]:
    room = _ROOM_CHECKS.get(sender)
    if room is None:
        room = _ROOM_CHECKS[sender] = _room_check(sender)
    return room


_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class SessionSocket:
    """Drives one session over one aiohttp WebSocket."""

    __slots__ = (
        "_close_task",
        "_deadline",
        "_expires_at",
        "_ping_at",
        "_ping_s",
        "_timer",
        "_transport",
        "_writer_busy",
        "_writing",
        "service",
        "session",
        "ws",
    )

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
        self.session = ClientSession(
            service.hub,
            service.config,
            webhook_room=None if sender is None else _shared_room_check(sender),
            wake=self._wake,
            per_user=service.per_user,
        )
        self._writing: asyncio.Task[None] | None = None  # the writer, while output is queued
        # One timer for the next ping and the token expiry (loop times; inf: none).
        self._timer: asyncio.TimerHandle | None = None
        self._ping_s = 0.0
        self._ping_at = math.inf
        self._expires_at = math.inf
        self._close_task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        connect_timeout_s = self.service.config.connect_timeout_s
        if connect_timeout_s > 0:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(connect_timeout_s, self._connect_deadline)
        try:
            # ``receive()`` rather than ``async for``: one coroutine frame less per socket.
            while (msg := await self.ws.receive()).type not in _CLOSED:
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
            if self._writing is not None:
                self._writing.cancel()
            for timer in (self._timer, self._deadline):
                if timer is not None:
                    timer.cancel()
            self.session.connection_lost()
            self._do_actions(socket_gone=True)
            if self._close_task is not None:
                await self._close_task

    def _do_actions(self, *, socket_gone: bool = False) -> None:
        rearm = False
        for action in self.session.actions_to_do():
            if socket_gone and not isinstance(action, SendWebhook):
                continue  # no timers or closing for a socket that is already gone
            if isinstance(action, SendWebhook):
                assert self.service.webhooks is not None
                self.service.webhooks.offer(WebhookJob(event=action.event, trace=action.trace))
            elif isinstance(action, StartPinger):
                self._ping_s = action.interval_s
                self._ping_at = asyncio.get_running_loop().time() + action.interval_s
                rearm = True
            elif isinstance(action, ArmExpiry):
                self._expires_at = asyncio.get_running_loop().time() + action.delay_s
                rearm = True
                if self._deadline is not None:  # armed at connect: the deadline is moot now
                    self._deadline.cancel()
                    self._deadline = None
            elif isinstance(action, CloseConnection) and self._close_task is None:
                message = action.reason.encode()
                self._close_task = asyncio.create_task(self._close(action.code, message))
        if rearm:
            self._arm()

    def _arm(self) -> None:
        """(Re-)arm the one timer for the next ping or the token expiry, whichever is first."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = min(self._ping_at, self._expires_at)
        if when != math.inf:
            self._timer = asyncio.get_running_loop().call_at(when, self._timer_due)

    def _wake(self) -> None:
        self.service.output.mark(self)
        if self.session.closing and self._close_task is None:
            # A close asked for by a hub push (a slow consumer) must not wait for the writer,
            # which may be the very thing that is stuck.
            asyncio.get_running_loop().call_soon(self._do_actions)

    def _connect_deadline(self) -> None:
        self.session.connect_deadline_passed()
        self._do_actions()

    def flush(self) -> None:
        """Write what the session queued, now, unless the socket must drain first."""
        transport = self._transport
        if (
            transport is None
            or self._writer_busy
            or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT_BYTES
        ):
            if self._writing is None:  # the writer task writes it, waiting for the drain
                self._writing = asyncio.get_running_loop().create_task(self._writer())
            return
        if transport.is_closing() or self.ws.closed:
            return  # the close (or the writer, if the peer went) deals with what is left
        batch = self.session.data_to_send()
        if batch:
            transport.write(text_frame(cf.encode(batch).encode()))

    async def _writer(self) -> None:
        """Send what is queued, one frame per batch, until the queue is empty; the next flush
        that finds the socket draining starts a new writer."""
        try:
            while batch := self.session.data_to_send():
                self._writer_busy = True
                try:
                    await self.ws.send_str(cf.encode(batch))
                finally:
                    self._writer_busy = False
        except (ConnectionError, RuntimeError):
            pass  # the client went away; the reader sees the close
        finally:
            self._writing = None

    async def _close(self, code: int, message: bytes) -> None:
        # Flush what is queued (e.g. the error reply explaining the close) before closing.
        batch = self.session.data_to_send()
        if batch:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(cf.encode(batch))
        await self.ws.close(code=code, message=message)

    def _timer_due(self) -> None:
        """The timer fired: the token expired (the session closes), or a ping is due (ping, or
        close a client that never answered, then re-arm for the next)."""
        self._timer = None
        if self.session.closing:
            return
        if self._expires_at <= self._ping_at:
            self.session.token_expired()
            self._do_actions()
            return
        self.session.ping_due()
        self._do_actions()
        if not self.session.closing:
            self._ping_at = asyncio.get_running_loop().time() + self._ping_s
            self._arm()


async def handle_client_websocket(request: web.Request) -> web.WebSocketResponse:
    service: RealtimeService = request.app[SERVICE]
    address = request.remote or ""
    if not service.per_address.acquire(address):
        service.hub.counters.refused_per_address += 1
        raise web.HTTPTooManyRequests(text="too many connections from this address")
    # Served here, not in a coroutine of its own: each open socket holds one frame less.
    try:
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
    finally:
        service.per_address.release(address)
