"""Async client for the gateway path (``websockets``), recording every message exactly.

Several messages may be in flight on one socket (open loop). Reply bookkeeping (matching by
``id`` or in order, stamps, timeouts, records) is ``travelagent.client.replies``, shared with
the gevent-friendly clients; this module is the asyncio socket layer.

Reconnection, as the gevent-friendly ``GatewayClient``: when the socket drops with messages in
flight, or goes silent (no pong within ``ping_timeout_s`` to a ping sent every ``ping_s`` while
messages are in flight), the reader reconnects (doubling waits, for at most ``reconnect_s``
seconds, by default the message timeout, and at most ``max_reconnects`` attempts) and sends a
``resume`` frame naming the last reply seen and the ids still waiting; replays complete their
messages, and when the ``resumed`` frame comes the rest are resent under their ids (the worker
de-duplicates, so no turn runs twice). A message ends ``lost`` only when the worker says it
never received it and resending is off; ``error`` with the reason when every attempt fails.
``send`` never raises for a connection that cannot be opened again: the message it started
ends ``error`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.client.aio_core import (
    PING_S,
    PING_TIMEOUT_S,
    AsyncClient,
    AsyncPendingSet,
    ReconnectBudget,
    watch_silence,
)
from travelagent.client.replies import (
    Pending,
    bearer_headers,
    gateway_event,
    gateway_ws_url,
    plan_after_resume,
    start_message,
)
from travelagent.wire import gateway as gw


class AsyncGatewayClient(AsyncClient):
    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        run: str = "",
        cell: str = "",
        stream: bool | None = None,
        timeout_s: float = 30.0,
        room: str | None = None,
        arch: str = "gateway",
        on_chunk: Callable[[str], None] | None = None,
        jwt_secret: str = "",
        max_reconnects: int | None = None,
        resend: bool = True,
        reconnect_s: float | None = None,
        ping_s: float = PING_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        """``max_reconnects``: cap on attempts after a drop (0: none, messages in flight end
        ``lost``; None: no cap); ``reconnect_s``: how long reconnecting may go on after a drop
        (None: ``timeout_s``); ``ping_s``/``ping_timeout_s``: the silent-socket watchdog (0:
        off)."""
        self.url = gateway_ws_url(url, user_id, room)
        self.jwt_secret = jwt_secret  # set: each connect sends a token (see sync_gateway)
        self.user_id, self.run, self.cell = user_id, run, cell
        self.stream, self.timeout_s, self.arch = stream, timeout_s, arch
        self.on_chunk = on_chunk  # called with each chunk's text as it arrives (chat)
        self.max_reconnects, self.resend = max_reconnects, resend
        self.reconnect_s = timeout_s if reconnect_s is None else reconnect_s
        self.ping_s, self.ping_timeout_s = ping_s, ping_timeout_s
        self.silent_drops = 0  # sockets dropped by the watchdog (no pong in time)
        self.pending = AsyncPendingSet()
        self.last_reply: str | None = None  # id of the last reply seen: where a resume starts
        self.reconnects = 0  # successful reconnections
        self.replayed = 0  # replies received by resume
        self.resent = 0  # messages resent after a resume
        self._texts: dict[str, str] = {}  # in flight: what to resend
        self._asked: list[str] | None = None  # ids named by the resume under way
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()  # a socket is open (not set while reconnecting)
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def _reconnecting(self) -> bool:
        return self.max_reconnects is None or self.max_reconnects > 0

    async def _open(self, open_timeout_s: float | None = None) -> ClientConnection:
        return await websockets.connect(
            self.url,
            max_size=None,
            open_timeout=self.timeout_s if open_timeout_s is None else open_timeout_s,
            close_timeout=min(self.timeout_s, 2.0),
            additional_headers=bearer_headers(self.user_id, self.jwt_secret),
        )

    async def connect(self) -> None:
        self._closing = False
        self._ws = await self._open()
        self._ready.set()
        self._reader = asyncio.create_task(self._read())
        if self.ping_s > 0 and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.create_task(
                watch_silence(
                    lambda: self._ws if self._ready.is_set() else None,
                    lambda: len(self.pending) > 0,
                    ping_s=self.ping_s,
                    timeout_s=self.ping_timeout_s,
                    on_silent=self._count_silent,
                )
            )

    def _count_silent(self) -> None:
        self.silent_drops += 1

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        """Start one message without waiting (open loop); pass the result to ``wait``."""
        if self._reader is None:
            raise RuntimeError("connect() first")
        p = start_message(
            run=self.run, cell=self.cell, arch=self.arch, publish="", stream=self.stream,
            user_id=self.user_id, timeout_s=self.timeout_s, intended_ns=intended_ns,
        )  # fmt: skip
        self.pending.add(p)
        mid = p.record.msg_id
        if self._reader.done() and not self._closing:  # the reader gave up: start afresh
            try:
                await self.connect()
            except (OSError, TimeoutError, websockets.InvalidHandshake) as err:
                why = str(err) or type(err).__name__
                self.pending.fail(mid, "error", f"cannot connect again: {why}")
                return p
        if self._reconnecting:
            self._texts[mid] = text
            if len(self._texts) > 2 * len(self.pending) + 64:
                keep = set(self.pending.ids())
                self._texts = {k: v for k, v in self._texts.items() if k in keep}
        await self._send_message(mid, text, p)
        return p

    async def _send_message(self, mid: str, text: str, p: Pending) -> None:
        frame = gw.message_frame(text, user_id=self.user_id, msg_id=mid, trace=p.trace,
                                 stream=self.stream)  # fmt: skip
        if self._reconnecting and not self._ready.is_set():
            return  # reconnecting: the resume names it and it is resent
        ws = self._ws
        try:
            if ws is None:
                raise websockets.ConnectionClosed(None, None)
            await ws.send(frame)
        except websockets.ConnectionClosed as err:
            if not self._reconnecting:
                self.pending.fail_all("error", f"connection closed: {err}")
            # else: the reader sees the socket close, reconnects, and the resume resends it

    async def _read(self) -> None:
        reason = "connection closed before the reply"
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for data in ws:
                        await self._on_frame(data)
                except websockets.ConnectionClosed as err:
                    reason = f"connection lost: {err}"
                if self._closing or not self._reconnecting or not len(self.pending):
                    break  # nothing in flight: the next send connects afresh
                if not await self._reconnect(reason):
                    return
        finally:
            self._ready.clear()
            self.pending.fail_all(
                "stopped" if self._closing else "error" if self._reconnecting else "lost",
                "client closed before the reply" if self._closing else reason,
            )

    async def _reconnect(self, reason: str) -> bool:
        self._ready.clear()
        error = ""
        budget = ReconnectBudget(self.reconnect_s, self.max_reconnects)
        while await budget.next():
            if self._closing:
                return False
            try:
                ws = await self._open(budget.open_timeout_s())
            except (OSError, TimeoutError, websockets.InvalidHandshake) as err:
                error = str(err) or type(err).__name__
                continue
            # Together, with no await between: a message sent from here on goes on the new
            # socket; one sent before is among the ids the resume names.
            self._ws, self._asked = ws, self.pending.ids()
            self._ready.set()
            try:
                await ws.send(
                    gw.resume_frame(
                        self.last_reply, self._asked[: gw.MAX_RESUME_PENDING], user_id=self.user_id
                    )
                )
            except websockets.ConnectionClosed as err:
                self._ready.clear()
                error = str(err)
                continue
            self.reconnects += 1
            return True
        self.pending.fail_all("error", budget.failed(reason, error))
        return False

    async def _on_frame(self, data: str | bytes) -> None:
        frame = gw.parse_server_frame(data)
        if frame.kind is gw.ServerFrameKind.RESUMED:
            await self._resumed(frame)
            return
        if self._asked is not None and frame.kind is gw.ServerFrameKind.ERROR and not frame.id:
            await self._resumed(None)  # "unknown type 'resume'": a server that does not resume
            return
        ev = gateway_event(data)
        if ev is None:
            return  # cf_agent_* frames of the original, or junk
        if ev.kind == "chunk" and self.on_chunk is not None:
            self.on_chunk(ev.text)
        if frame.replay:
            self.replayed += 1
        rec = self.pending.handle(ev)
        if rec is not None:
            self._texts.pop(rec.msg_id, None)
            if rec.status == "ok":
                self.last_reply = rec.msg_id

    async def _resumed(self, frame: gw.ServerFrame | None) -> None:
        asked, ws = self._asked, self._ws
        if asked is None or ws is None:
            return  # not ours (a resume this client did not ask for)
        if frame is not None and frame.error is not None and self.last_reply is not None:
            # The worker does not know our last reply (a new database, or past its retention):
            # ask for the pending ids alone.
            self.last_reply = None
            await ws.send(
                gw.resume_frame(None, asked[: gw.MAX_RESUME_PENDING], user_id=self.user_id)
            )
            return
        self._asked = None
        states = None if frame is None else (frame.pending or {})
        plan = plan_after_resume(states, asked, self.pending.ids(), resend=self.resend)
        for msg_id in plan.lost:
            self.pending.fail(msg_id, "lost", "the gateway never received it")
        for msg_id in plan.resend:
            text, p = self._texts.get(msg_id), self.pending.get(msg_id)
            if text is not None and p is not None:
                await self._send_message(msg_id, text, p)
                self.resent += 1

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
