"""What the asyncio clients share: awaitable pending messages and the client's outer shape.

``AsyncClient`` is the one place for the code every asyncio transport repeated: use as an
``async with`` context (``connect`` on entry, ``close`` on exit) and ``request`` = ``send`` +
``wait``. A subclass says how to connect, send and close; the gevent-friendly clients share
``SocketClient`` (``sync_gateway.py``) the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Self

import websockets
from websockets.asyncio.client import ClientConnection

from travelagent.client.records import MessageRecord
from travelagent.client.replies import Pending, PendingSet, reconnect_delay_s

# While messages are in flight, a client pings its socket this often and drops it when the pong
# does not come within the deadline: a link gone silent (no FIN, no RST) is found in about
# ``PING_S + PING_TIMEOUT_S`` instead of at the message's timeout.
PING_S = 0.5
PING_TIMEOUT_S = 1.0
# A reconnect attempt's opening handshake may take this long (at most the message timeout).
RECONNECT_OPEN_S = 1.0


async def watch_silence(
    current: Callable[[], ClientConnection | None],
    busy: Callable[[], bool],
    *,
    ping_s: float = PING_S,
    timeout_s: float = PING_TIMEOUT_S,
    on_silent: Callable[[], None] | None = None,
) -> None:
    """Run until cancelled: every ``ping_s`` while ``busy()``, ping ``current()`` and abort its
    transport (the reader then sees the connection lost and reconnects) if no pong comes within
    ``timeout_s``. Frames still arriving keep the socket alive: a pong is queued behind them."""
    while True:
        await asyncio.sleep(ping_s)
        ws = current()
        if ws is None or not busy():
            continue
        try:
            async with asyncio.timeout(timeout_s):
                pong = await ws.ping()
                await pong
        except TimeoutError:
            if current() is ws:  # still the socket in use: it went silent
                if on_silent is not None:
                    on_silent()
                with contextlib.suppress(Exception):
                    ws.transport.abort()
        except (websockets.ConnectionClosed, RuntimeError):
            continue  # closed meanwhile: the reader sees to it


class ReconnectBudget:
    """Reconnect attempts after a drop: doubling waits (``reconnect_delay_s``) for at most
    ``budget_s`` seconds from the drop, and at most ``max_attempts`` attempts (None: no cap)."""

    def __init__(self, budget_s: float, max_attempts: int | None) -> None:
        self.budget_s, self.max_attempts = budget_s, max_attempts
        self.start = time.monotonic()
        self.attempts = 0

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    async def next(self) -> bool:
        """Wait before the next attempt; False when the budget is spent (no attempt left)."""
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            return False
        delay = reconnect_delay_s(self.attempts)
        if self.attempts > 0 and self.left_s() < delay:
            return False
        await asyncio.sleep(min(delay, max(0.0, self.left_s())))
        self.attempts += 1
        return True

    def open_timeout_s(self) -> float:
        return max(0.2, min(RECONNECT_OPEN_S, self.left_s()))

    def failed(self, reason: str, error: str) -> str:
        spent = time.monotonic() - self.start
        return f"{reason}; {self.attempts} reconnects failed in {spent:.1f} s: {error}"


class AsyncPendingSet(PendingSet):
    """``PendingSet`` for the asyncio clients: every message in flight can be awaited."""

    def __init__(self) -> None:
        super().__init__(on_done=self._resolve)
        self._futures: dict[str, asyncio.Future[MessageRecord]] = {}

    def add(self, pending: Pending) -> None:
        self._futures[pending.record.msg_id] = asyncio.get_running_loop().create_future()
        super().add(pending)

    async def wait(self, pending: Pending, timeout_s: float) -> MessageRecord:
        """The finished record: the reply, an error, ``lost``, or ``timeout`` after
        ``timeout_s``."""
        fut = self._futures.get(pending.record.msg_id)
        if fut is not None:
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError:
                self.expire()
        return pending.record

    def _resolve(self, rec: MessageRecord) -> None:
        fut = self._futures.pop(rec.msg_id, None)
        if fut is not None and not fut.done():
            fut.set_result(rec)


class AsyncClient:
    """One asyncio client of one path: ``stream`` says whether replies are asked streamed
    (None: the server's default), ``timeout_s`` bounds each message."""

    pending: AsyncPendingSet
    timeout_s: float

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        """Start one message without waiting (open loop); pass the result to ``wait``."""
        raise NotImplementedError

    async def wait(self, p: Pending) -> MessageRecord:
        return await self.pending.wait(p, self.timeout_s)

    async def request(self, text: str, *, intended_ns: int | None = None) -> MessageRecord:
        """Send one message and wait for its whole reply; the record's status says how it went."""
        return await self.wait(await self.send(text, intended_ns=intended_ns))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
