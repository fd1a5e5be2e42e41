"""Client of the publisher socket (``GET /api/ws``): many publishes in flight on one socket.

Usage::

    pub = PublisherClient("ws://127.0.0.1:8000/api/ws", api_key)
    await pub.connect()
    result = await pub.publish("travel:u1", {"type": "agent_response", "text": "..."})
    await pub.aclose()

Commands are matched to replies by id, so callers do not wait for each other. The commands
called in one pass of the event loop go out together, newline-separated in one frame (one
write, one frame for the server to read; at most ``MAX_FRAME_CHARS`` a frame), as the server's
replies to one frame come back in one. When the socket drops, a supervisor reconnects with
exponential backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``). Calls in flight at
that moment fail with ``PublisherDisconnected`` and are *not* retried: the server may already
have published them, and a retry could deliver a message twice. Calls made while reconnecting
wait for the new socket (up to ``timeout_s``).

Keep-alive: a ping every ``ping_interval_s``; a socket whose pong does not come within
``ping_timeout_s`` is dropped and reconnected, so a socket that went silent (a peer or a path
that stopped delivering) does not hold every later publish until its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.wire import server_api as api

log = logging.getLogger(__name__)

# Commands per frame are bounded by size, well below the server's 1 MiB frame limit.
MAX_FRAME_CHARS = 256 * 1024


class PublisherError(Exception):
    """The server answered with an error: ``code`` is Centrifugo's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class PublisherDisconnected(ConnectionError):
    """The socket dropped before the reply came; the command may or may not have run."""


publisher_url = api.socket_url


class PublisherClient:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        ping_interval_s: float = 5.0,
        ping_timeout_s: float = 5.0,
    ) -> None:
        self.url = publisher_url(url)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.reconnects = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[api.SocketReply]] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: list[tuple[int, str]] = []  # (id, command line), not yet written
        self._wake = asyncio.Event()
        self._closing = False

    async def _open(self) -> ClientConnection:
        return await websockets.connect(
            self.url,
            additional_headers=api.api_key_headers(self.api_key),
            open_timeout=self.timeout_s,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            close_timeout=self.ping_timeout_s,
            compression=None,
            max_size=None,
        )

    async def connect(self) -> None:
        """Open the socket (raising if the first attempt fails) and start supervising it."""
        self._ws = await self._open()
        self._ready.set()
        self._supervisor = asyncio.create_task(self._supervise())
        self._writer = asyncio.create_task(self._write_commands())

    async def _supervise(self) -> None:
        while not self._closing:
            ws = self._ws
            assert ws is not None
            await self._read(ws)
            self._ready.clear()
            self._ws = None
            self._outbox.clear()  # written to no other socket: those calls fail below
            lost = PublisherDisconnected("publisher socket closed before the reply")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(lost)
            self._pending.clear()
            if self._closing:
                return
            delay_s = self.backoff_initial_s
            while not self._closing:
                await asyncio.sleep(delay_s)
                try:
                    self._ws = await self._open()
                except (OSError, TimeoutError, websockets.WebSocketException) as err:
                    log.info("publisher socket reconnect failed: %s", err)
                    delay_s = min(delay_s * 2, self.backoff_max_s)
                    continue
                self.reconnects += 1
                self._ready.set()
                break

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                for reply in api.decode_socket_replies(frame):
                    fut = self._pending.pop(reply.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        except websockets.ConnectionClosed:
            pass

    async def _socket(self) -> ClientConnection:
        """The open socket, waiting (up to ``timeout_s``) while the supervisor reconnects."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            ws = self._ws
            if ws is not None and self._ready.is_set():
                return ws
            remaining_s = deadline - loop.time()
            try:
                if remaining_s <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._ready.wait(), remaining_s)
            except TimeoutError:
                raise PublisherDisconnected("publisher socket not reconnected in time") from None

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one server API method; return its result or raise PublisherError."""
        if self._closing or self._supervisor is None:
            raise PublisherDisconnected("publisher client is not connected")
        await self._socket()
        cmd_id = next(self._ids)
        fut: asyncio.Future[api.SocketReply] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        self._outbox.append((cmd_id, api.socket_command(cmd_id, method, params)))
        self._wake.set()
        try:
            # A timeout scope, not wait_for: no waiter future and callbacks per call.
            async with asyncio.timeout(self.timeout_s):
                reply = await fut
        finally:
            self._pending.pop(cmd_id, None)
        if reply.error is not None:
            raise PublisherError(*reply.error)
        return reply.result

    async def _write_commands(self) -> None:
        """Write what the callers queued, as few frames as the size bound allows."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                ws, batch = self._ws, self._take_frame()
                why = "publisher socket closed while sending"
                try:
                    if ws is not None:
                        await ws.send("\n".join(line for _, line in batch))
                        continue
                except websockets.ConnectionClosed:
                    pass
                except Exception as err:  # the batch fails, the writer goes on
                    why = f"publisher socket write failed: {err!r}"
                for cmd_id, _ in batch:
                    fut = self._pending.get(cmd_id)
                    if fut is not None and not fut.done():
                        fut.set_exception(PublisherDisconnected(why))

    def _take_frame(self) -> list[tuple[int, str]]:
        """The oldest queued commands that fit one frame (always at least one)."""
        out = self._outbox
        size, n = len(out[0][1]), 1
        while n < len(out) and size + 1 + len(out[n][1]) <= MAX_FRAME_CHARS:
            size += 1 + len(out[n][1])
            n += 1
        if n == len(out):
            self._outbox = []
            return out
        batch, self._outbox = out[:n], out[n:]
        return batch

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        params = api.publish_params(channel, data, idempotency_key=idempotency_key)
        return await self.call("publish", params)

    async def aclose(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        for task in (self._supervisor, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._writer = None
