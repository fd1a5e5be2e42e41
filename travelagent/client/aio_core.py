"""What the asyncio clients share: awaitable pending messages and the client's outer shape.

``AsyncClient`` is the one place for the code every asyncio transport repeated: use as an
``async with`` context (``connect`` on entry, ``close`` on exit) and ``request`` = ``send`` +
``wait``. A subclass says how to connect, send and close; the gevent-friendly clients share
``SocketClient`` (``sync_gateway.py``) the same way.
"""

from __future__ import annotations

import asyncio
from typing import Self

from travelagent.client.records import MessageRecord
from travelagent.client.replies import Pending, PendingSet


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
