"""Async client for the realtime path: Centrifugo protocol in, ``agent_response`` out.

The client subscribes to its agent channel ``travel:<user>``, publishes
``{"type":"message","text":...,"userId":...,"id":...,"trace":...}`` there, and waits for the
agent's ``agent_response`` publications with the same ``id`` (start/chunk/complete when
streamed, ``isError`` on failure). Its own message, echoed back by the channel, is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from travelagent.client.centrifugo import CentrifugoClient, CentrifugoError, Push, make_token
from travelagent.client.records import MessageRecord
from travelagent.wire.trace import Trace, TraceError, now_ns


def realtime_url(base: str) -> str:
    """``ws://host:port`` (or a full ``.../connection/websocket`` URL) → the client socket URL."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/connection/websocket") else "/connection/websocket"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


@dataclass
class _Pending:
    record: MessageRecord
    trace: Trace
    done: asyncio.Future[MessageRecord]


class AsyncRealtimeClient:
    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        jwt_secret: str,
        run: str = "",
        cell: str = "",
        publish: str = "",
        streaming: bool = False,
        timeout_s: float = 30.0,
        on_chunk: Callable[[str], None] | None = None,
    ) -> None:
        self.user_id = user_id
        self.on_chunk = on_chunk
        self.channel = f"travel:{user_id}"
        self.run, self.cell, self.publish = run, cell, publish
        self.streaming, self.timeout_s = streaming, timeout_s
        self._url, self._token = realtime_url(url), make_token(user_id, jwt_secret)
        self.centrifugo = CentrifugoClient(self._url, self._token, timeout_s=timeout_s)
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
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

    async def __aenter__(self) -> AsyncRealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, text: str, *, intended_ns: int | None = None) -> MessageRecord:
        return await self.wait(await self.send(text, intended_ns=intended_ns))

    async def send(self, text: str, *, intended_ns: int | None = None) -> _Pending:
        trace = Trace.start()
        rec = MessageRecord(
            run=self.run, cell=self.cell, arch="realtime", publish=self.publish,
            streaming=self.streaming, user=self.user_id, agent=self.user_id, msg_id=trace.id,
            intended_ns=0, send_ns=0, trace=trace,
        )  # fmt: skip
        pending = _Pending(rec, trace, asyncio.get_running_loop().create_future())
        self._pending[trace.id] = pending
        t = trace.stamp("client.send", "client")
        rec.send_ns, rec.intended_ns = t, intended_ns or t
        data = {"type": "message", "text": text, "userId": self.user_id, "id": trace.id,
                "trace": trace.to_wire()}  # fmt: skip
        try:
            await self.centrifugo.publish(self.channel, data)
        except (CentrifugoError, ConnectionError, TimeoutError) as err:
            self._finish(pending, "error", f"publish refused: {err}")
        return pending

    async def wait(self, pending: _Pending) -> MessageRecord:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), self.timeout_s)
        except TimeoutError:
            self._finish(pending, "timeout", f"no reply within {self.timeout_s} s")
            return pending.record

    def _finish(self, p: _Pending, status: str, error: str = "") -> None:
        self._pending.pop(p.record.msg_id, None)
        if not p.done.done():
            p.record.status, p.record.error = status, error
            p.done.set_result(p.record)

    async def _run_dispatch(self) -> None:
        queue = self.centrifugo.pushes
        while True:
            push = await queue.get()
            if push.kind == "pub" and push.channel == self.channel:
                self._on_publication(push)
            elif push.kind == "disconnect":
                break
        for p in list(self._pending.values()):
            self._finish(p, "lost", "disconnected before the reply")

    def _on_publication(self, push: Push) -> None:
        if self.recovery is not None and push.offset:
            self.recovery = (max(push.offset, self.recovery[0]), self.recovery[1])
        data = push.data
        if not isinstance(data, dict) or data.get("type") != "agent_response":
            return  # our own message echoed back, or someone else's traffic
        msg_id = data.get("id")
        p = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if p is None:
            return
        rec, t = p.record, push.t_ns
        rec.bytes += len(str(data.get("text", "")).encode())  # payload text, not framing
        if data.get("streaming"):
            rec.streaming = True  # no content yet: first_ns waits for the first text
            return
        if rec.first_ns is None:
            rec.first_ns = t
        if data.get("chunk"):
            rec.chunks += 1
            if self.on_chunk is not None:
                self.on_chunk(str(data.get("text", "")))
            return
        raw = data.get("trace")
        if raw is not None:
            with contextlib.suppress(TraceError):
                server = Trace.from_wire(raw)
                if server.id == p.trace.id:
                    p.trace.stamps = list(server.stamps)
        rec.reply = str(data.get("text", ""))
        p.trace.stamp("client.first", "client", t_ns=rec.first_ns)
        p.trace.stamp("client.recv", "client", t_ns=t)
        if data.get("isError"):
            self._finish(p, "error", str(data.get("text", "agent error")))
        else:
            rec.recv_ns = t
            self._finish(p, "ok")

    async def close(self) -> None:
        await self._stop_dispatch()
        await self.centrifugo.aclose()
        for p in list(self._pending.values()):
            self._finish(p, "lost", "client closed")
