"""Async client for the realtime path: Centrifugo protocol in, ``agent_response`` out.

The client subscribes to its agent channel ``travel:<user>``, publishes
``{"type":"message","text":...,"userId":...,"id":...,"trace":...}`` there, and waits for the
agent's ``agent_response`` publications with the same ``id`` (start/chunk/complete when
streamed, ``isError`` on failure). Its own message, echoed back by the channel, is ignored.
Reply bookkeeping is ``travelagent.client.replies``, shared with every other client.

Reconnection: when the socket drops (a close, or the server's ``disconnect`` push with a code
that allows it) or goes silent (no pong within ``ping_timeout_s`` to a WebSocket ping sent every
``ping_s`` while messages are in flight), the client reconnects by itself (doubling waits for at
most ``reconnect_s`` seconds, by default the message timeout, and at most ``max_reconnects``
attempts if set) and resubscribes with Centrifugo recovery from the last ``(offset, epoch)`` it saw:
recovered replies complete their messages, and a message whose publish was never answered is
published again under its id (the worker keys the turn by it, so it never runs twice). A
message in flight at the drop is *cut off*: if its reply has not come by its deadline it ends
``lost``, not ``timeout``. ``reconnect()`` does the same on demand and says ``True`` only when
the service recovered the gap and every message cut off has its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import websockets

from travelagent.client.aio_core import (
    PING_S,
    PING_TIMEOUT_S,
    AsyncClient,
    AsyncPendingSet,
    ReconnectBudget,
    watch_silence,
)
from travelagent.client.centrifugo import (
    CentrifugoClient,
    CentrifugoError,
    ConnectionLost,
    Push,
    make_token,
)
from travelagent.client.replies import (
    Pending,
    ReplyEvent,
    agent_channel,
    classify_publication,
    may_reconnect,
    message_data,
    realtime_ws_url,
    start_message,
)
from travelagent.wire.trace import now_ns

# The newest publications read back from the channel's history when recovery fails.
HISTORY_LOOKBACK = 200


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
        auto_reconnect: bool = True,
        max_reconnects: int | None = None,
        reconnect_s: float | None = None,
        ping_s: float = PING_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        """``reconnect_s``: how long reconnecting by itself may go on after a drop (None:
        ``timeout_s``); ``max_reconnects``: a cap on its attempts (None: none);
        ``ping_s``/``ping_timeout_s``: the silent-socket watchdog (0: off)."""
        self.user_id = user_id
        self.on_chunk = on_chunk
        self.channel = agent_channel(user_id)
        self.run, self.cell, self.publish = run, cell, publish
        self.stream, self.timeout_s = stream, timeout_s
        self.auto_reconnect, self.max_reconnects = auto_reconnect, max_reconnects
        self.reconnect_s = timeout_s if reconnect_s is None else reconnect_s
        self.ping_s, self.ping_timeout_s = ping_s, ping_timeout_s
        self.silent_drops = 0  # sockets dropped by the watchdog (no pong in time)
        self._watchdog: asyncio.Task[None] | None = None
        self._url, self._token = realtime_ws_url(url), make_token(user_id, jwt_secret)
        self.centrifugo = self._new_centrifugo()
        self.pending = AsyncPendingSet()
        self._dispatch: asyncio.Task[None] | None = None
        self.recovery: tuple[int, str] | None = None  # last (offset, epoch) seen
        self.reconnects = 0  # successful reconnections (by itself or by ``reconnect()``)
        self.recovered = 0  # replies completed from a recovery
        self.from_history = 0  # of which read from the channel's history (recovery failed)
        self.republished = 0  # messages published again after a reconnect
        self._unacked: dict[str, dict[str, Any]] = {}  # msg id -> data, until publish answers
        self._ready = asyncio.Event()  # connected and subscribed
        self._closing = False

    def _new_centrifugo(self, open_timeout_s: float | None = None) -> CentrifugoClient:
        client = CentrifugoClient(
            self._url, self._token, timeout_s=self.timeout_s, open_timeout_s=open_timeout_s
        )
        queue = client.pushes

        def closed(lost: ConnectionLost) -> None:
            body = {"code": lost.code, "reason": lost.reason}
            queue.put_nowait(Push("closed", self.channel, body, now_ns()))

        client.on_close = closed
        return client

    async def connect(self) -> None:
        self._closing = False
        await self.centrifugo.connect()
        result = await self.centrifugo.subscribe(self.channel)
        if "epoch" in result:
            self.recovery = (int(result.get("offset", 0)), str(result["epoch"]))
        self._ready.set()
        self._dispatch = asyncio.create_task(self._run_dispatch())
        if self.ping_s > 0 and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.create_task(
                watch_silence(
                    lambda: self.centrifugo.ws if self._ready.is_set() else None,
                    lambda: len(self.pending) > 0,
                    ping_s=self.ping_s,
                    timeout_s=self.ping_timeout_s,
                    on_silent=self._count_silent,
                )
            )

    def _count_silent(self) -> None:
        self.silent_drops += 1

    async def reconnect(self) -> bool:
        """Open a new socket and resubscribe from the last offset seen. Replies published in
        between are recovered and complete their messages (stamped when recovered). True only
        if the service recovered the gap and every message cut off by the drop has its reply;
        False if the epoch changed (replies lost) or a cut-off message still waits."""
        await self._stop_dispatch()
        await self.centrifugo.aclose()
        try:
            return await self._resubscribe()
        finally:
            self._dispatch = asyncio.create_task(self._run_dispatch())

    async def _resubscribe(self, open_timeout_s: float | None = None) -> bool:
        self._ready.clear()
        cut = self.pending.cut_off()
        self.centrifugo = self._new_centrifugo(open_timeout_s)
        await self.centrifugo.connect()
        result = await self.centrifugo.subscribe(self.channel, recover_from=self.recovery)
        t = now_ns()
        for pub in result.get("publications", []):
            if self._on_publication(Push("pub", self.channel, pub, t)):
                self.recovered += 1
        if "epoch" in result:
            self.recovery = (int(result.get("offset", 0)), str(result["epoch"]))
        if not result.get("recovered") and any(i in set(self.pending.ids()) for i in cut):
            await self._finals_from_history()
        self.reconnects += 1
        self._ready.set()
        await self._republish()
        waiting = set(self.pending.ids())
        return bool(result.get("recovered")) and not any(i in waiting for i in cut)

    async def _finals_from_history(self) -> None:
        """Recovery failed (a new epoch, or a gap past the history): a final or error published
        meanwhile may still be in the channel's history; take the ones of messages still
        waiting from there (chunks are not replayed: the final carries the whole reply)."""
        try:
            hist = await self.centrifugo.history(self.channel, limit=HISTORY_LOOKBACK, reverse=True)
        except (CentrifugoError, ConnectionLost, TimeoutError):
            return  # no history to read: what was cut off ends lost at its deadline
        waiting = set(self.pending.ids())
        t = now_ns()
        for pub in hist.get("publications", []):
            push = Push("pub", self.channel, pub, t)
            ev = classify_publication(push.data, push.size, push.t_ns)
            if ev is not None and ev.kind in ("final", "error") and ev.msg_id in waiting:
                if self.pending.handle(ev) is not None:
                    self.recovered += 1
                    self.from_history += 1

    async def _republish(self) -> None:
        """Publish again every message whose publish was never answered (same id)."""
        waiting = set(self.pending.ids())
        for mid, data in list(self._unacked.items()):
            if mid not in waiting:
                del self._unacked[mid]
                continue
            await self._publish(mid, data)
            self.republished += 1

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
        dispatch = self._dispatch
        if self.auto_reconnect and dispatch is not None and dispatch.done() and not self._closing:
            # Reconnecting gave up earlier: start afresh; a refusal ends this message.
            with contextlib.suppress(Exception):
                await self.centrifugo.aclose()
            self.centrifugo = self._new_centrifugo()
            try:
                await self.connect()
            except (
                CentrifugoError,
                ConnectionError,
                OSError,
                TimeoutError,
                websockets.InvalidHandshake,
            ) as err:
                why = str(err) or type(err).__name__
                self.pending.handle(ReplyEvent("error", mid, 0, error=f"cannot connect: {why}"))
                return p
        data = message_data(text, user_id=self.user_id, msg_id=mid, trace=p.trace, stream=None)
        self._unacked[mid] = data
        if self.auto_reconnect and not self._ready.is_set():
            with contextlib.suppress(TimeoutError):  # reconnecting: publish on the new socket
                await asyncio.wait_for(self._ready.wait(), self.timeout_s)
        await self._publish(mid, data)
        return p

    async def _publish(self, mid: str, data: dict[str, Any]) -> None:
        try:
            await self.centrifugo.publish(self.channel, data)
        except ConnectionLost as err:
            if not self.auto_reconnect:
                self._unacked.pop(mid, None)
                self.pending.handle(ReplyEvent("error", mid, 0, error=f"publish failed: {err}"))
            # else: unanswered; the reconnect publishes it again
            return
        except (CentrifugoError, ConnectionError, TimeoutError) as err:
            self._unacked.pop(mid, None)
            self.pending.handle(ReplyEvent("error", mid, 0, error=f"publish refused: {err}"))
            return
        self._unacked.pop(mid, None)

    async def _run_dispatch(self) -> None:
        reason = "disconnected before the reply"
        try:
            while True:
                push = await self.centrifugo.pushes.get()
                if push.kind == "pub" and push.channel == self.channel:
                    self._on_publication(push)
                elif push.kind in ("disconnect", "closed"):
                    code, why = push.body.get("code"), push.body.get("reason")
                    reason = f"disconnected ({code} {why}) before the reply"
                    if self._closing:
                        break
                    if not self.auto_reconnect or not may_reconnect(code):
                        # Cut off: ``reconnect()`` may still recover them; if not, they end
                        # ``lost`` at their deadline.
                        self._ready.clear()
                        self.pending.cut_off()
                        return
                    if not await self._reconnect_by_itself(reason):
                        return
        except asyncio.CancelledError:
            raise  # stopped by ``reconnect()`` or ``close()``, which see to the messages
        self._ready.clear()
        if self._closing:
            self.pending.fail_all("stopped", "client closed before the reply")
        else:
            self.pending.fail_all("lost", reason)

    async def _reconnect_by_itself(self, reason: str) -> bool:
        self._ready.clear()
        self.pending.cut_off()
        error = ""
        budget = ReconnectBudget(self.reconnect_s, self.max_reconnects)
        while await budget.next():
            if self._closing:
                return False
            with contextlib.suppress(Exception):
                await self.centrifugo.aclose()
            try:
                await self._resubscribe(budget.open_timeout_s())
                return True
            except (
                CentrifugoError,
                ConnectionError,
                OSError,
                TimeoutError,
                websockets.InvalidHandshake,
            ) as err:
                error = str(err) or type(err).__name__
        self.pending.fail_all("lost", budget.failed(reason, error))
        return False

    def _on_publication(self, push: Push) -> bool:
        """Apply one publication; True if it completed a message."""
        if self.recovery is not None and push.offset:
            self.recovery = (max(push.offset, self.recovery[0]), self.recovery[1])
        ev = classify_publication(push.data, push.size, push.t_ns)
        if ev is None:
            return False  # our own message echoed back, or someone else's traffic
        if ev.kind == "chunk" and self.on_chunk is not None:
            self.on_chunk(ev.text)
        return self.pending.handle(ev) is not None

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._stop_dispatch()
        await self.centrifugo.aclose()
        self.pending.fail_all("stopped", "client closed before the reply")
