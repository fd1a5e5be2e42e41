"""Async client for the gateway path (``websockets``), recording every message exactly.

Several messages may be in flight on one socket (open loop). Reply bookkeeping (matching by
``id`` or in order, stamps, timeouts, records) is ``travelagent.client.replies``, shared with
the gevent-friendly clients; this module is the asyncio socket layer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.client.aio_core import AsyncClient, AsyncPendingSet
from travelagent.client.replies import (
    Pending,
    bearer_headers,
    gateway_event,
    gateway_ws_url,
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
    ) -> None:
        self.url = gateway_ws_url(url, user_id, room)
        self.jwt_secret = jwt_secret  # set: each connect sends a token (see sync_gateway)
        self.user_id, self.run, self.cell = user_id, run, cell
        self.stream, self.timeout_s, self.arch = stream, timeout_s, arch
        self.on_chunk = on_chunk  # called with each chunk's text as it arrives (chat)
        self.pending = AsyncPendingSet()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._ws = await websockets.connect(
            self.url,
            max_size=None,
            open_timeout=self.timeout_s,
            additional_headers=bearer_headers(self.user_id, self.jwt_secret),
        )
        self._reader = asyncio.create_task(self._read())

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        """Start one message without waiting (open loop); pass the result to ``wait``."""
        if self._ws is None:
            raise RuntimeError("connect() first")
        p = start_message(
            run=self.run, cell=self.cell, arch=self.arch, publish="", stream=self.stream,
            user_id=self.user_id, timeout_s=self.timeout_s, intended_ns=intended_ns,
        )  # fmt: skip
        self.pending.add(p)
        frame = gw.message_frame(text, user_id=self.user_id, msg_id=p.record.msg_id,
                                 trace=p.trace, stream=self.stream)  # fmt: skip
        try:
            await self._ws.send(frame)
        except websockets.ConnectionClosed as err:
            self.pending.fail_all("error", f"connection closed: {err}")
        return p

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                ev = gateway_event(data)
                if ev is None:
                    continue  # cf_agent_* frames of the original, or junk
                if ev.kind == "chunk" and self.on_chunk is not None:
                    self.on_chunk(ev.text)
                self.pending.handle(ev)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.pending.fail_all("lost", "connection closed before the reply")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
