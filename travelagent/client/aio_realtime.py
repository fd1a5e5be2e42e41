"""Async client for the realtime path: Centrifugo protocol in, ``agent_response`` out.

The client subscribes to its agent channel ``travel:<user>``, publishes
``{"type":"message","text":...,"userId":...,"id":...,"trace":...}`` there, and waits for the
agent's ``agent_response`` publications with the same ``id`` (start/chunk/complete when
streamed, ``isError`` on failure). Its own message, echoed back by the channel, is ignored.
Reply bookkeeping is ``travelagent.client.replies``, shared with every other client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from travelagent.client.aio_core import AsyncClient, AsyncPendingSet
from travelagent.client.centrifugo import CentrifugoClient, CentrifugoError, Push, make_token
from travelagent.client.replies import (
    Pending,
    ReplyEvent,
    agent_channel,
    classify_publication,
    message_data,
    realtime_ws_url,
    start_message,
)
from travelagent.wire.trace import now_ns


class AsyncRealtimeClient(AsyncClient):
    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        jwt_secret: str,
        run: str = "",
        cell: str = "",
        publish: str = "",
        stream: bool = False,
        timeout_s: float = 30.0,
        on_chunk: Callable[[str], None] | None = None,
    ) -> None:
        self.user_id = user_id
        self.on_chunk = on_chunk
        self.channel = agent_channel(user_id)
        self.run, self.cell, self.publish = run, cell, publish
        self.stream, self.timeout_s = stream, timeout_s
        self._url, self._token = realtime_ws_url(url), make_token(user_id, jwt_secret)
        self.centrifugo = CentrifugoClient(self._url, self._token, timeout_s=timeout_s)
        self.pending = AsyncPendingSet()
        self._dispatch: asyncio.Task[None] | None = None
        self.recovery: tuple[int, str] | None = None  # last (offset, epoch) seen

    async def connect(self) -> None:
        await self.centrifugo.connect()
        result = await self.centrifugo.subscribe(self.channel)
        if "epoch" in result:
            self.recovery = (int(result.get("offset", 0)), str(result["epoch"]))
        self._dispatch = asyncio.create_task(self._run_dispatch())

    async def reconnect(self) -> bool:
        """Open a new socket and resubscribe from the last offset seen. Replies published in
        between are recovered and complete their messages (stamped when recovered). Returns
        whether the service could recover the gap (False: the epoch changed, replies lost)."""
        await self._stop_dispatch()
        await self.centrifugo.aclose()
        self.centrifugo = CentrifugoClient(self._url, self._token, timeout_s=self.timeout_s)
        await self.centrifugo.connect()
        result = await self.centrifugo.subscribe(self.channel, recover_from=self.recovery)
        t = now_ns()
        for pub in result.get("publications", []):
            self._on_publication(Push("pub", self.channel, pub, t))
        if "epoch" in result:
            self.recovery = (int(result.get("offset", 0)), str(result["epoch"]))
        self._dispatch = asyncio.create_task(self._run_dispatch())
        return bool(result.get("recovered"))

    async def _stop_dispatch(self) -> None:
        if self._dispatch is not None:
            self._dispatch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch
            self._dispatch = None

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        p = start_message(
            run=self.run, cell=self.cell, arch="realtime", publish=self.publish,
            stream=self.stream, user_id=self.user_id, timeout_s=self.timeout_s,
            intended_ns=intended_ns,
        )  # fmt: skip
        mid = p.record.msg_id
        self.pending.add(p)
        data = message_data(text, user_id=self.user_id, msg_id=mid, trace=p.trace, stream=None)
        try:
            await self.centrifugo.publish(self.channel, data)
        except (CentrifugoError, ConnectionError, TimeoutError) as err:
            self.pending.handle(ReplyEvent("error", mid, 0, error=f"publish refused: {err}"))
        return p

    async def _run_dispatch(self) -> None:
        queue = self.centrifugo.pushes
        while True:
            push = await queue.get()
            if push.kind == "pub" and push.channel == self.channel:
                self._on_publication(push)
            elif push.kind == "disconnect":
                break
        self.pending.fail_all("lost", "disconnected before the reply")

    def _on_publication(self, push: Push) -> None:
        if self.recovery is not None and push.offset:
            self.recovery = (max(push.offset, self.recovery[0]), self.recovery[1])
        ev = classify_publication(push.data, push.size, push.t_ns)
        if ev is None:
            return  # our own message echoed back, or someone else's traffic
        if ev.kind == "chunk" and self.on_chunk is not None:
            self.on_chunk(ev.text)
        self.pending.handle(ev)

    async def close(self) -> None:
        await self._stop_dispatch()
        await self.centrifugo.aclose()
        self.pending.fail_all("lost", "client closed")
