"""``PendingSet`` for the asyncio clients: every message in flight can be awaited."""

from __future__ import annotations

import asyncio

from travelagent.client.records import MessageRecord
from travelagent.client.replies import Pending, PendingSet


class AsyncPendingSet(PendingSet):
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
