"""The hybrid client: the agent through the gateway, presence and rooms through realtime.

The gateway socket is opened with ``?room=<name>`` so the agent announces itinerary changes to
``room:<name>``; the realtime connection subscribes to that room with join/leave pushes. Agent
messages are recorded with ``arch="hybrid"``; room events are kept in ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from travelagent.client.aio_core import AsyncClient
from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.centrifugo import CentrifugoClient, Push, make_token
from travelagent.client.records import MessageRecord
from travelagent.client.replies import Pending, realtime_ws_url


class AsyncHybridClient(AsyncClient):
    def __init__(
        self,
        gateway: str,
        realtime: str,
        user_id: str,
        room: str,
        *,
        jwt_secret: str,
        run: str = "",
        cell: str = "",
        stream: bool | None = None,
        timeout_s: float = 30.0,
        on_chunk: Callable[[str], None] | None = None,
    ) -> None:
        self.user_id, self.room = user_id, room
        self.channel = f"room:{room}"
        self.gateway = AsyncGatewayClient(
            gateway, user_id, run=run, cell=cell, stream=stream, timeout_s=timeout_s,
            room=room, arch="hybrid", on_chunk=on_chunk, jwt_secret=jwt_secret,
        )  # fmt: skip
        self.centrifugo = CentrifugoClient(
            realtime_ws_url(realtime), make_token(user_id, jwt_secret), timeout_s=timeout_s
        )
        self.events: list[Push] = []
        self._changed = asyncio.Condition()
        self._dispatch: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.centrifugo.connect()
        await self.centrifugo.subscribe(self.channel, join_leave=True)
        self._dispatch = asyncio.create_task(self._run_dispatch())
        await self.gateway.connect()

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        return await self.gateway.send(text, intended_ns=intended_ns)

    async def wait(self, p: Pending) -> MessageRecord:
        return await self.gateway.wait(p)

    async def presence(self) -> dict[str, Any]:
        return await self.centrifugo.presence(self.channel)

    async def wait_for(self, kind: str, *, timeout_s: float = 5.0, **match: Any) -> Push:
        """The first room event of ``kind`` ("join", "leave", "pub") whose body matches."""

        def found() -> Push | None:
            for ev in self.events:
                if ev.kind == kind and all(_get(ev, k) == v for k, v in match.items()):
                    return ev
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(found), timeout_s)
        ev = found()
        assert ev is not None
        return ev

    async def _run_dispatch(self) -> None:
        while True:
            push = await self.centrifugo.pushes.get()
            if push.channel != self.channel:
                continue
            async with self._changed:
                self.events.append(push)
                self._changed.notify_all()

    async def close(self) -> None:
        await self.gateway.close()
        if self._dispatch is not None:
            self._dispatch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch
        await self.centrifugo.aclose()


def _get(ev: Push, key: str) -> Any:
    """``user`` → the joining/leaving user; ``type`` → the publication's data type."""
    if key == "user":
        info = ev.body.get("info", {})
        return info.get("user") if isinstance(info, dict) else None
    data = ev.data
    return data.get(key) if isinstance(data, dict) else None
