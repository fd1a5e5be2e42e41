"""Async client for the gateway path (``websockets``), recording every message exactly.

Several messages may be in flight on one socket (open loop); replies are matched by ``id``,
or, for a server that does not echo ids (a deployed original), to the oldest pending message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.client.records import MessageRecord
from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace, now_ns


@dataclass
class _Pending:
    record: MessageRecord
    trace: Trace
    done: asyncio.Future[MessageRecord]
    parts: list[str] = field(default_factory=list)


def gateway_url(base: str, user_id: str, room: str | None = None) -> str:
    """``ws://host:port`` (or a full ``.../api/gateway/ws`` URL) → the socket URL for a user."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/api/gateway/ws") else "/api/gateway/ws"
    query = {"userId": user_id, **({"room": room} if room else {})}
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


class AsyncGatewayClient:
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
    ) -> None:
        self.url = gateway_url(url, user_id, room)
        self.user_id, self.run, self.cell = user_id, run, cell
        self.stream, self.timeout_s, self.arch = stream, timeout_s, arch
        self.on_chunk = on_chunk  # called with each chunk's text as it arrives (chat)
        self._ws: ClientConnection | None = None
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._reader: asyncio.Task[None] | None = None
        self.other_frames = 0

    async def connect(self) -> None:
        self._ws = await websockets.connect(self.url, max_size=None, open_timeout=self.timeout_s)
        self._reader = asyncio.create_task(self._read())

    async def __aenter__(self) -> AsyncGatewayClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, text: str, *, intended_ns: int | None = None) -> MessageRecord:
        """Send one message and wait for its whole reply; the record's status says how it went."""
        pending = await self.send(text, intended_ns=intended_ns)
        return await self.wait(pending)

    async def send(self, text: str, *, intended_ns: int | None = None) -> _Pending:
        """Start one message without waiting (open loop); pass the result to ``wait``."""
        if self._ws is None:
            raise RuntimeError("connect() first")
        trace = Trace.start()
        loop = asyncio.get_running_loop()
        rec = MessageRecord(
            run=self.run,
            cell=self.cell,
            arch=self.arch,
            publish="",
            streaming=bool(self.stream),
            user=self.user_id,
            agent=self.user_id,
            msg_id=trace.id,
            intended_ns=0,
            send_ns=0,
            trace=trace,
        )
        pending = _Pending(rec, trace, loop.create_future())
        self._pending[trace.id] = pending
        t = trace.stamp("client.send", "client")
        rec.send_ns, rec.intended_ns = t, intended_ns or t
        frame = gw.message_frame(
            text, user_id=self.user_id, msg_id=trace.id, trace=trace, stream=self.stream
        )
        try:
            await self._ws.send(frame)
        except websockets.ConnectionClosed as err:
            self._finish(pending, "error", f"connection closed: {err}")
        return pending

    async def wait(self, pending: _Pending) -> MessageRecord:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), self.timeout_s)
        except TimeoutError:
            self._finish(pending, "timeout", f"no reply within {self.timeout_s} s")
            return pending.record

    def _finish(self, p: _Pending, status: str, error: str = "") -> None:
        self._pending.pop(p.record.msg_id, None)
        if p.done.done():
            return
        p.record.status, p.record.error = status, error
        p.done.set_result(p.record)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                t = now_ns()
                frame = gw.parse_server_frame(data)
                if frame.kind is gw.ServerFrameKind.OTHER:
                    self.other_frames += 1
                    continue
                p = self._pending.get(frame.id) if frame.id else None
                if p is None and not frame.id and self._pending:
                    p = next(iter(self._pending.values()))
                if p is None:
                    continue  # a reply to a message that already timed out
                self._on_frame(p, frame, t, len(data))
        except websockets.ConnectionClosed:
            pass
        finally:
            for p in list(self._pending.values()):
                self._finish(p, "lost", "connection closed before the reply")

    def _on_frame(self, p: _Pending, frame: gw.ServerFrame, t: int, size: int) -> None:
        rec = p.record
        rec.bytes += size
        kind = frame.kind
        if kind is gw.ServerFrameKind.START:
            rec.streaming = True  # no content yet: first_ns waits for the first text
            return
        if rec.first_ns is None:
            rec.first_ns = t
        if kind is gw.ServerFrameKind.CHUNK:
            rec.chunks += 1
            p.parts.append(frame.text)
            if self.on_chunk is not None:
                self.on_chunk(frame.text)
            return
        # Final frame: adopt the server's stamps (they include ours) and close the record.
        if frame.trace is not None and frame.trace.id == p.trace.id:
            p.trace.stamps = list(frame.trace.stamps)
        rec.reply = frame.text if kind is not gw.ServerFrameKind.ERROR else ""
        p.trace.stamp("client.first", "client", t_ns=rec.first_ns)
        p.trace.stamp("client.recv", "client", t_ns=t)
        if kind is gw.ServerFrameKind.ERROR:
            self._finish(p, "error", frame.error or "error")
        else:
            rec.recv_ns = t
            self._finish(p, "ok")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
