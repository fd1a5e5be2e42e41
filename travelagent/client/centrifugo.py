"""A lean asyncio client for Centrifugo's bidirectional JSON protocol (ours or a real one).

Usage::

    client = CentrifugoClient("ws://127.0.0.1:8000/connection/websocket", make_token("u1", key))
    await client.connect()
    await client.subscribe("travel:u1")
    await client.publish("travel:u1", {"text": "hello"})
    push = await client.pushes.get()      # Push(kind="pub", channel=..., body=..., t_ns=...)
    await client.aclose()

One receive task reads frames; replies resolve futures keyed by command id; pushes go to the
``pushes`` queue stamped with ``now_ns()`` the moment their frame was read (before parsing), so
a load client measures arrival, not its own processing. Server pings are answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import now_ns


def make_token(user: str, secret: str, *, ttl_s: int = 3600, **claims: Any) -> str:
    """An HS256 connection token for ``user`` (Centrifugo's ``sub``), valid for ``ttl_s``."""
    body = {"sub": user, "exp": int(time.time()) + ttl_s, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


class CentrifugoError(Exception):
    """An error reply: ``code`` is Centrifugo's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class ConnectionLost(ConnectionError):
    """The socket closed; ``code``/``reason`` are the close frame's (Centrifugo disconnect)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed: {code} {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Push:
    kind: str  # "pub", "join", "leave", or another push type
    channel: str
    body: dict[str, Any]  # for "pub": {"data":..., "offset":..., "info":...}
    t_ns: int  # when the frame holding it was read
    size: int = 0  # characters of its line in the frame

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def offset(self) -> int:
        return int(self.body.get("offset", 0))


class CentrifugoClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        max_size: int | None = None,
        open_timeout_s: float | None = None,
    ) -> None:
        """``timeout_s`` bounds each command; ``open_timeout_s`` the opening handshake (None:
        ``timeout_s``)."""
        self.url = url
        self.token = token
        self.timeout_s = timeout_s
        self.open_timeout_s = timeout_s if open_timeout_s is None else open_timeout_s
        self.max_size = max_size
        self.pushes: asyncio.Queue[Push] = asyncio.Queue()
        self.client_id = ""
        self.pings = 0
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[cf.ServerReply]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed: ConnectionLost | None = None
        # Called once the socket has closed (after pending commands fail): a client that
        # reconnects by itself learns of the drop here rather than by a timeout.
        self.on_close: Callable[[ConnectionLost], None] | None = None

    async def connect(self, **params: Any) -> dict[str, Any]:
        """Open the socket and send ``connect``; return its result (client id, ping interval)."""
        self._ws = await websockets.connect(
            self.url,
            max_size=self.max_size,
            open_timeout=self.open_timeout_s,
            close_timeout=min(self.timeout_s, 2.0),
            compression=None,
        )
        self.closed = None
        self._reader = asyncio.create_task(self._read(self._ws))
        result = await self.call("connect", {"token": self.token, **params})
        self.client_id = result.get("client", "")
        return result

    @property
    def ws(self) -> ClientConnection | None:
        """The open socket (None before ``connect`` or after ``aclose``)."""
        return self._ws

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one command and wait for its result; raise CentrifugoError on an error reply."""
        ws = self._ws
        if ws is None or self.closed is not None:
            raise self.closed or ConnectionLost(None, "not connected")
        cmd_id = next(self._ids)
        fut: asyncio.Future[cf.ServerReply] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        try:
            await ws.send(cf.command(cmd_id, method, params))
            reply = await asyncio.wait_for(fut, self.timeout_s)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            raise ConnectionLost(code, "closed while sending") from None
        finally:
            self._pending.pop(cmd_id, None)
        if reply.error is not None:
            raise CentrifugoError(*reply.error)
        return reply.result(method)

    async def subscribe(
        self, channel: str, *, recover_from: tuple[int, str] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Subscribe; with ``recover_from=(offset, epoch)`` ask for what was missed since.

        Recovered publications are in the result's ``publications``; they are not queued.
        """
        body: dict[str, Any] = {"channel": channel, **params}
        if recover_from is not None:
            body.update(recover=True, offset=recover_from[0], epoch=recover_from[1])
        return await self.call("subscribe", body)

    async def unsubscribe(self, channel: str) -> dict[str, Any]:
        return await self.call("unsubscribe", {"channel": channel})

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        return await self.call("publish", {"channel": channel, "data": data})

    async def presence(self, channel: str) -> dict[str, Any]:
        return (await self.call("presence", {"channel": channel})).get("presence", {})

    async def presence_stats(self, channel: str) -> dict[str, Any]:
        return await self.call("presence_stats", {"channel": channel})

    async def history(
        self,
        channel: str,
        *,
        limit: int = -1,
        since: tuple[int, str] | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """The channel's publications, oldest first (``reverse``: newest first, so ``limit``
        keeps the newest)."""
        body: dict[str, Any] = {"channel": channel, "limit": limit}
        if reverse:
            body["reverse"] = True
        if since is not None:
            body["since"] = {"offset": since[0], "epoch": since[1]}
        return await self.call("history", body)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                t_ns = now_ns()
                for msg in cf.decode_server_frame(frame):
                    await self._on_message(ws, msg, t_ns)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = ConnectionLost(ws.close_code, ws.close_reason or "")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(self.closed)
            if self.on_close is not None:
                self.on_close(self.closed)

    async def _on_message(self, ws: ClientConnection, msg: cf.ServerMessage, t_ns: int) -> None:
        if isinstance(msg, cf.ServerReply):
            fut = self._pending.get(msg.id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, cf.ServerPing):
            self.pings += 1
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(cf.PONG)
        else:
            self.pushes.put_nowait(Push(msg.kind, msg.channel, msg.body, t_ns, msg.size))

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._ws = None
        self._reader = None
