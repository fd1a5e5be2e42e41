"""A blocking, gevent-friendly client for the realtime path (Centrifugo JSON protocol).

The client connects to ``/connection/websocket`` with a JWT (``sub`` = user), subscribes to the
user's agent channel ``travel:<user>``, publishes ``{"type":"message",...}`` there and awaits the
``agent_response`` publications carrying the same ``id`` (streamed: ``streaming`` start,
``chunk`` pieces, ``complete`` whole; failures: ``isError``). Its own message comes back as a
publication too and is ignored. Server pings (``{}``) are answered with ``{}``.

It can also subscribe to shared rooms (``room:<name>``, asking for join/leave pushes) and count
presence events: the hybrid user talks to the agent through the gateway and uses this socket only
for presence.

The frame handling (``decode_frames``, ``classify_push``) is pure; ``RealtimeClient`` is the thin
socket layer, sharing its message bookkeeping with the gateway client.

Reconnection, as the asyncio ``AsyncRealtimeClient``: when the socket drops with messages in
flight (a close, or a ``disconnect`` push whose code allows it), the client reconnects by itself
(doubling waits for up to ``reconnect_s``, by default the message timeout; ``max_reconnects``
caps the attempts if set), resubscribes with recovery from the last
``(offset, epoch)`` seen, completes messages from the recovered replies and publishes again
those whose publish was never answered (same id). A message cut off by the drop ends ``lost``
(not ``timeout``) if its reply has not come by its deadline, or when every attempt fails.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from travelagent.client.centrifugo import make_token
from travelagent.client.records import MessageRecord
from travelagent.client.replies import (
    OnDone,
    Pending,
    PendingSet,
    ReplyEvent,
    agent_channel,
    classify_publication,
    may_reconnect,
    message_data,
    realtime_ws_url,
    reconnect_attempts,
    start_message,
)
from travelagent.client.sync_gateway import SocketClient, ws_connect
from travelagent.wire import centrifugo as cf
from travelagent.wire import ndjson
from travelagent.wire.trace import now_ns

__all__ = ["RealtimeClient", "RealtimeError", "classify_publication", "decode_frames",
           "make_token", "realtime_ws_url"]  # fmt: skip


class RealtimeError(RuntimeError):
    """The realtime service refused a command (connect, subscribe)."""


def decode_frames(data: str | bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects in one frame (several may be separated by newlines); junk is skipped."""
    for obj, _ in decode_frames_sized(data):
        yield obj


def decode_frames_sized(data: str | bytes) -> Iterator[tuple[dict[str, Any], int]]:
    """Like ``decode_frames``, with each object's size in characters (its share of the frame)."""
    for obj, line in ndjson.objects(data):
        yield obj, len(line.strip())


@dataclass
class PresenceCounts:
    joins: int = 0
    leaves: int = 0
    publications: int = 0


class RealtimeClient(SocketClient):
    """One realtime connection for one user."""

    arch = "realtime"

    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        jwt_secret: str,
        run: str = "",
        cell: str = "",
        publish: str = "",
        stream: bool | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        on_done: OnDone | None = None,
        agent: bool = True,
        rooms: tuple[str, ...] = (),
        on_push: Callable[[str, str], None] | None = None,
        max_reconnects: int | None = None,
        reconnect_s: float | None = None,
    ) -> None:
        """``reconnect_s``: how long reconnecting by itself may go on after a drop (None:
        ``timeout_s``); ``max_reconnects``: a cap on its attempts (0: never; None: no cap)."""
        self.url = realtime_ws_url(url)
        self.user_id = user_id
        self.jwt_secret = jwt_secret
        self.run, self.cell, self.publish = run, cell, publish
        self.stream = stream
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.agent = agent
        self.rooms = rooms
        self.pending = PendingSet(on_done=on_done)
        self.presence = PresenceCounts()
        self.on_push = on_push  # called with ("join" | "leave", channel) for presence pushes
        self.client_id = ""
        self._ws: Any = None
        self._cmd_id = 0
        self._publishes: dict[int, str] = {}  # command id -> message id, for publish errors
        self._send_lock = threading.Lock()
        self.max_reconnects = max_reconnects
        self.reconnect_s = timeout_s if reconnect_s is None else reconnect_s
        self.recovery: tuple[int, str] | None = None  # last (offset, epoch) of the agent channel
        self._unacked: dict[str, dict[str, Any]] = {}  # msg id -> publish data, until answered
        self._disconnect_code: int | None = None
        self._conn_lock = threading.RLock()
        self.reconnects = 0  # successful reconnections
        self.recovered = 0  # replies completed from a recovery
        self.republished = 0  # messages published again after a reconnect

    # -- connection ---------------------------------------------------------------------------

    def _command(self, method: str, params: dict[str, Any]) -> int:
        with self._send_lock:
            self._cmd_id += 1
            cid = self._cmd_id
            self._ws.send(cf.command(cid, method, params))
        return cid

    def _await_reply(self, cid: int, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RealtimeError(f"no reply to {method} within {self.connect_timeout_s} s")
            try:
                data = self._ws.recv(timeout=left)
            except TimeoutError:
                continue
            except Exception as closed:  # the server may refuse by closing (3500 bad token)
                raise RealtimeError(f"{method} refused: connection closed: {closed}") from None
            # A frame may carry several messages: the reply and, after it, pushes the server
            # sent at once (a join of the next user to subscribe). Every one is dispatched,
            # not only those before the reply.
            found: dict[str, Any] | None = None
            for obj, size in decode_frames_sized(data):
                if found is None and obj.get("id") == cid:
                    found = obj
                else:
                    self._dispatch(obj, size, now_ns())
            if found is not None:
                if "error" in found:
                    refusal = found["error"] if isinstance(found["error"], dict) else {}
                    raise RealtimeError(
                        f"{method} refused: {refusal.get('code')} {refusal.get('message')}"
                    )
                reply = found.get(method)
                return reply if isinstance(reply, dict) else {}

    def connect(self) -> None:
        self._connect(recover=False)

    def _connect(self, *, recover: bool) -> list[MessageRecord]:
        """Open, connect and subscribe; with ``recover``, from the last position seen, and
        return the records the recovered publications completed."""
        self._ws = ws_connect(self.url, timeout_s=self.connect_timeout_s)
        self._disconnect_code = None
        done: list[MessageRecord] = []
        try:
            token = make_token(self.user_id, self.jwt_secret)
            reply = self._await_reply(
                self._command("connect", {"token": token, "name": "travelagent-load"}), "connect"
            )
            self.client_id = str(reply.get("client", ""))
            if self.agent:
                params: dict[str, Any] = {"channel": agent_channel(self.user_id)}
                if recover and self.recovery is not None:
                    params.update(recover=True, offset=self.recovery[0], epoch=self.recovery[1])
                sub = self._await_reply(self._command("subscribe", params), "subscribe")
                t_ns = now_ns()
                for pub in sub.get("publications") or []:
                    if isinstance(pub, dict):
                        rec = self._publication(pub, len(str(pub.get("data"))), t_ns)
                        if rec is not None:
                            self.recovered += 1
                            done.append(rec)
                if "epoch" in sub:
                    self.recovery = (int(sub.get("offset", 0)), str(sub["epoch"]))
            for room in self.rooms:
                cid = self._command("subscribe", {"channel": room, "join_leave": True})
                self._await_reply(cid, "subscribe")
        except Exception:
            ws, self._ws = self._ws, None
            ws.close()
            raise
        return done

    def _connection_lost(self, reason: str) -> list[MessageRecord]:
        code = self._disconnect_code
        if self.max_reconnects == 0 or not may_reconnect(code):
            return super()._connection_lost(reason)
        with self._conn_lock:
            if self._ws is not None:  # another greenlet reconnected already
                return []
            self.pending.cut_off()
            error = ""
            start, attempt = time.monotonic(), 0
            for attempt in reconnect_attempts(self.reconnect_s, self.max_reconnects):  # noqa: B007
                try:
                    done = self._connect(recover=True)
                except Exception as err:
                    error = str(err) or type(err).__name__
                    continue
                self.reconnects += 1
                self._republish()
                return done
            spent = time.monotonic() - start
            return self.pending.fail_all(
                "lost", f"{reason}; {attempt} reconnects failed in {spent:.1f} s: {error}"
            )

    def _republish(self) -> None:
        """Publish again (same id) every message whose publish was never answered."""
        waiting = set(self.pending.ids())
        self._publishes.clear()  # answers to the old socket's commands never come
        for mid, data in list(self._unacked.items()):
            if mid not in waiting:
                del self._unacked[mid]
                continue
            with self._send_lock:
                self._cmd_id += 1
                self._publishes[self._cmd_id] = mid
                params = {"channel": agent_channel(self.user_id), "data": data}
                self._ws.send(cf.command(self._cmd_id, "publish", params))
            self.republished += 1

    # -- messages -----------------------------------------------------------------------------

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        with self._conn_lock:
            if self._ws is None and len(self.pending):
                self._connection_lost("connection lost")
            if self._ws is None:
                self.connect()
        with self._send_lock:
            self._cmd_id += 1
            cid = self._cmd_id
            p = start_message(
                run=self.run, cell=self.cell, arch=self.arch, publish=self.publish,
                stream=self.stream, user_id=self.user_id, timeout_s=self.timeout_s,
                intended_ns=intended_ns, msg_id=msg_id,
            )  # fmt: skip
            mid = p.record.msg_id
            self.pending.add(p)
            self._publishes[cid] = mid
            data = message_data(
                text, user_id=self.user_id, msg_id=mid, trace=p.trace, stream=self.stream
            )
            params = {"channel": agent_channel(self.user_id), "data": data}
            if self.agent and self.max_reconnects != 0:
                self._unacked[mid] = data
            try:
                self._ws.send(cf.command(cid, "publish", params))
            except Exception as err:
                if mid not in self._unacked:
                    self.pending.fail_all("error", f"send failed: {err}")
                # else: still in flight; the reader reconnects and publishes it again
                self._ws = None
        return p

    def _dispatch(self, obj: dict[str, Any], size: int, t_ns: int) -> MessageRecord | None:
        if not obj:  # server ping: answer with an empty command
            with self._send_lock:
                self._ws.send(cf.PONG)
            return None
        cid = obj.get("id")
        if isinstance(cid, int) and cid in self._publishes:
            mid = self._publishes.pop(cid)
            self._unacked.pop(mid, None)
            if "error" in obj:
                err = obj.get("error") or {}
                reason = f"publish refused: {err.get('code')} {err.get('message')}"
                return self.pending.handle(ReplyEvent("error", mid, size, error=reason, t_ns=t_ns))
            return None
        push = obj.get("push")
        if not isinstance(push, dict):
            return None
        channel = push.get("channel")
        if "join" in push or "leave" in push:
            kind = "join" if "join" in push else "leave"
            if kind == "join":
                self.presence.joins += 1
            else:
                self.presence.leaves += 1
            if self.on_push is not None:
                self.on_push(kind, str(channel))
        elif isinstance(push.get("pub"), dict):
            self.presence.publications += 1
            if channel == agent_channel(self.user_id):
                return self._publication(push["pub"], size, t_ns)
        elif "disconnect" in push:
            # The server closes the socket next: the reader sees it and reconnects, unless
            # the code forbids it (then what is in flight ends lost).
            info = push["disconnect"] if isinstance(push["disconnect"], dict) else {}
            code = info.get("code")
            self._disconnect_code = code if isinstance(code, int) else None
            ws, self._ws = self._ws, None
            if ws is not None:
                with contextlib.suppress(Exception):
                    ws.close()
        return None

    def _publication(self, pub: dict[str, Any], size: int, t_ns: int) -> MessageRecord | None:
        offset = pub.get("offset")
        if self.recovery is not None and isinstance(offset, int):
            self.recovery = (max(offset, self.recovery[0]), self.recovery[1])
        ev = classify_publication(pub.get("data"), size, t_ns)
        return self.pending.handle(ev) if ev is not None else None

    def _frame_records(self, data: str | bytes, t_ns: int) -> list[MessageRecord]:
        done = []
        for obj, size in decode_frames_sized(data):
            rec = self._dispatch(obj, size, t_ns)
            if rec is not None:
                done.append(rec)
        return done
