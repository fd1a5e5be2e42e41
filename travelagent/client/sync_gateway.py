"""A blocking, gevent-friendly gateway client (the Worker's ``/api/gateway/ws``).

Locust monkey-patches the standard library with gevent, so blocking sockets cooperate: this
client uses ``sync_ws``, a lean blocking WebSocket whose reads happen in the caller (no reader
thread or greenlet per connection, no hand-over per message). One connection carries many
messages; replies are matched to messages by ``id`` when the peer echoes it, and in arrival
order when it does not (a deployed original Worker), since one agent answers its messages one
at a time.

Reply bookkeeping (stamps, matching, timeouts, records) is ``travelagent.client.replies``,
shared with the realtime client and the async clients; this module is the socket layer.

Reconnection (``GatewayClient``): when the socket drops with messages in flight, the client
reconnects (doubling waits for up to ``reconnect_s``, by default the message timeout, at most
``max_reconnects`` attempts if set), sends a ``resume`` frame
naming the last reply it saw and the ids it still waits for, completes those the worker
replays, and resends the rest under the same ids (the worker de-duplicates by id, so no turn
runs twice). A message ends ``lost`` only when the worker says it never received it and
resending is off; when every attempt fails, ``error`` with the reason.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from travelagent.client import sync_ws
from travelagent.client.aio_core import PING_S, PING_TIMEOUT_S
from travelagent.client.records import MessageRecord
from travelagent.client.replies import (
    OnDone,
    Pending,
    PendingSet,
    bearer_headers,
    gateway_event,
    gateway_ws_url,
    plan_after_resume,
    reconnect_attempts,
    start_message,
)
from travelagent.wire.gateway import (
    MAX_RESUME_PENDING,
    ServerFrameKind,
    message_frame,
    parse_server_frame,
    resume_frame,
)
from travelagent.wire.trace import now_ns

__all__ = [
    "GatewayClient",
    "Pending",
    "PendingSet",
    "bearer_headers",
    "gateway_ws_url",
    "ws_connect",
]


def ws_connect(url: str, *, timeout_s: float, headers: dict[str, str] | None = None) -> Any:
    """Open a long-lived blocking WebSocket (``sync_ws``): no compression, and no pings from
    this side unless the silent-socket check sends one (servers ping if they want to)."""
    return sync_ws.connect(
        url, open_timeout=timeout_s, max_size=16 * 1024 * 1024, additional_headers=headers
    )


class SocketClient:
    """The blocking socket layer both sync clients share: one ``sync_ws`` connection,
    its ``PendingSet``, and the loops that read it. Subclasses say how a frame becomes records
    (``_frame_records``) and how a message is sent (``send``)."""

    # A peer that echoes no ids gets its replies matched in order; after a timeout a late reply
    # would be taken for the next message's, so such a connection starts afresh.
    restart_after_unmatched_timeout = False
    _ws: Any
    pending: PendingSet
    # The silent-socket check (as the asyncio clients' ``watch_silence``): while messages are
    # in flight and nothing has been heard for ``ping_s``, ping; no pong within
    # ``ping_timeout_s`` and the socket is dropped as lost (0: off).
    ping_s: float = PING_S
    ping_timeout_s: float = PING_TIMEOUT_S
    silent_drops = 0
    _heard_ns = 0
    _busy_ns = 0
    _ping: tuple[Any, threading.Event, int] | None = None  # (socket, pong, sent at)

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        raise NotImplementedError

    def _frame_records(self, data: str | bytes, t_ns: int) -> list[MessageRecord]:
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def _connection_lost(self, reason: str) -> list[MessageRecord]:
        """The socket dropped (``self._ws`` is None): what becomes of the messages in flight.
        Here they are ``lost``; ``GatewayClient`` reconnects and resumes instead."""
        return self.pending.fail_all("lost", reason)

    def close(self) -> list[MessageRecord]:
        """Close the socket; messages still outstanding end as ``stopped`` (cut short by us)."""
        # Records first: closing waits for the peer's close frame, and a stopping load user
        # may be killed during that wait.
        lost = self.pending.fail_all("stopped", "client closed before the reply")
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # closing a broken socket must not mask the run's records
                pass
        return lost

    def pump(self, timeout_s: float) -> list[MessageRecord]:
        """Read one frame (waiting up to ``timeout_s``), expire late messages; return the
        records that finished."""
        done = self.pending.expire()
        ws = self._ws
        if ws is None:
            if len(self.pending):
                done += self._connection_lost("connection lost")
            return done
        try:
            data = ws.recv(timeout=max(timeout_s, 0.0))
        except TimeoutError:
            return done + self._check_silence(ws)
        except Exception as err:  # the connection dropped
            if self._ws is ws:
                self._ws = None
            return done + self._connection_lost(f"connection lost: {err}")
        t_ns = now_ns()
        self._heard_ns = t_ns
        done += self._frame_records(data, t_ns)
        if not len(self.pending):
            self._busy_ns = 0
        return done

    def _check_silence(self, ws: Any) -> list[MessageRecord]:
        """After a read timed out: ping a socket silent for ``ping_s`` with messages in flight;
        drop it (``_connection_lost``) if the pong is ``ping_timeout_s`` late."""
        t_ns = now_ns()
        if self.ping_s <= 0 or not len(self.pending):
            self._ping, self._busy_ns = None, 0
            return []
        if not self._busy_ns:
            self._busy_ns = t_ns  # silence counts from when messages were first in flight
        ping = self._ping if self._ping is not None and self._ping[0] is ws else None
        if ping is not None and ping[1].is_set():
            self._heard_ns, self._ping, ping = t_ns, None, None
        if ping is None:
            if t_ns - max(self._heard_ns, self._busy_ns) >= self.ping_s * 1e9:
                try:
                    self._ping = (ws, ws.ping(), t_ns)
                except Exception as err:  # closed meanwhile
                    return self._drop(ws, f"connection lost: {err}")
            return []
        if t_ns - ping[2] < self.ping_timeout_s * 1e9:
            return []
        self.silent_drops += 1
        return self._drop(ws, f"connection went silent: no pong within {self.ping_timeout_s:g} s")

    def _drop(self, ws: Any, reason: str) -> list[MessageRecord]:
        self._ping = None
        if self._ws is ws:
            self._ws = None
        with contextlib.suppress(Exception):
            ws.close_socket()
        return self._connection_lost(reason)

    def wait(self, pending: Pending) -> MessageRecord:
        """Pump until ``pending`` finishes (single-greenlet use)."""
        cap_s = min(1.0, self.ping_s) if self.ping_s > 0 else 1.0
        while not pending.done.is_set():
            deadline = self.pending.next_deadline_ns()
            left_s = cap_s if deadline is None else max((deadline - now_ns()) / 1e9, 0.0)
            self.pump(min(left_s, cap_s) + 0.001)
        if (
            self.restart_after_unmatched_timeout
            and self.pending.ids_echoed is False
            and pending.record.status == "timeout"
        ):
            self.close()
        return pending.record

    def request(self, text: str, *, msg_id: str | None = None) -> MessageRecord:
        return self.wait(self.send(text, msg_id=msg_id))

    def receive_forever(self, stop: threading.Event) -> None:
        """Receiver loop for open-loop use; finished records go to ``on_done``."""
        while not stop.is_set():
            if self._ws is None and not len(self.pending):
                stop.wait(0.05)
                continue
            self.pump(min(0.2, self.ping_s) if self.ping_s > 0 else 0.2)


class GatewayClient(SocketClient):
    """A gateway socket for one user.

    Closed loop: ``request(text)`` sends and blocks until the reply (or timeout).
    Open loop: ``send(text, intended_ns=...)`` returns at once; a second greenlet runs
    ``receive_forever()`` and each finished record goes to ``on_done``.
    """

    arch = "gateway"
    restart_after_unmatched_timeout = True

    def __init__(
        self,
        url: str,
        user_id: str,
        *,
        run: str = "",
        cell: str = "",
        publish: str = "",
        stream: bool | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        on_done: OnDone | None = None,
        arch: str | None = None,
        jwt_secret: str = "",
        max_reconnects: int | None = None,
        resend: bool = True,
        reconnect_s: float | None = None,
    ) -> None:
        """``max_reconnects``: a cap on attempts after a drop with messages in flight (0: none,
        they end ``lost`` as before; None: no cap); ``reconnect_s``: how long reconnecting may
        go on (None: ``timeout_s``); ``resend``: resend what a resume did not deliver."""
        self.url = gateway_ws_url(url, user_id)
        self.max_reconnects, self.resend = max_reconnects, resend
        self.reconnect_s = timeout_s if reconnect_s is None else reconnect_s
        self.last_reply: str | None = None  # id of the last reply seen: where a resume starts
        self._texts: dict[str, str] = {}  # in flight: what to resend
        self._conn_lock = threading.RLock()
        self.reconnects = 0  # successful reconnections
        self.replayed = 0  # replies received by resume
        self.resent = 0  # messages resent after a resume
        # With a secret, each connect sends a fresh token (the gateway's user is its sub);
        # without one, nothing, as the original Worker's clients (an open gateway only).
        self.jwt_secret = jwt_secret
        self.user_id = user_id
        self.run, self.cell, self.publish = run, cell, publish
        self.stream = stream
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.arch = arch or self.arch
        self.pending = PendingSet(on_done=on_done)
        self._ws: Any = None
        self._send_lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        self._ws = self._open()

    def _open(self) -> Any:
        return ws_connect(
            self.url,
            timeout_s=self.connect_timeout_s,
            headers=bearer_headers(self.user_id, self.jwt_secret),
        )

    def _connection_lost(self, reason: str) -> list[MessageRecord]:
        if self.max_reconnects == 0:
            return super()._connection_lost(reason)
        return self._reconnect(reason)

    def _reconnect(self, reason: str) -> list[MessageRecord]:
        """Reconnect, resume and resend (see the module docstring); the records finished."""
        with self._conn_lock:
            if self._ws is not None:  # another greenlet got there first
                return []
            error = ""
            start, attempt = time.monotonic(), 0
            for attempt in reconnect_attempts(self.reconnect_s, self.max_reconnects):  # noqa: B007
                try:
                    ws = self._open()
                except Exception as err:
                    error = f"{err}"
                    continue
                try:
                    done = self._resume(ws)
                except Exception as err:  # dropped again during the resume: try again
                    error = f"{err}"
                    with contextlib.suppress(Exception):
                        ws.close()
                    continue
                self._ws = ws
                self.reconnects += 1
                return done
            spent = time.monotonic() - start
            return self.pending.fail_all(
                "error", f"{reason}; {attempt} reconnects failed in {spent:.1f} s: {error}"
            )

    def _resume(self, ws: Any) -> list[MessageRecord]:
        """Ask ``ws`` for what was missed, read the replays up to ``resumed``, resend the rest."""
        asked = self.pending.ids()
        ws.send(resume_frame(self.last_reply, asked[:MAX_RESUME_PENDING], user_id=self.user_id))
        done: list[MessageRecord] = []
        states: dict[str, str] | None = None
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break  # no answer: a server that does not resume; resend everything
            try:
                data = ws.recv(timeout=left)
            except TimeoutError:
                break
            frame = parse_server_frame(data)
            if frame.kind is ServerFrameKind.RESUMED:
                if frame.error is not None and self.last_reply is not None:
                    # The worker does not know our last reply (restarted on a new database,
                    # or older than its retention): ask for the pending ids alone.
                    self.last_reply = None
                    ws.send(resume_frame(None, asked[:MAX_RESUME_PENDING], user_id=self.user_id))
                    continue
                states = frame.pending or {}
                break
            if frame.kind is ServerFrameKind.ERROR and frame.id is None:
                break  # "unknown type 'resume'": a server that does not resume
            if frame.replay:
                self.replayed += 1
            done += self._frame_records(data, now_ns())
        plan = plan_after_resume(states, asked, self.pending.ids(), resend=self.resend)
        for msg_id in plan.lost:
            rec = self.pending.fail(msg_id, "lost", "the gateway never received it")
            if rec is not None:
                done.append(rec)
        for msg_id in plan.resend:
            text = self._texts.get(msg_id)
            p = self.pending.get(msg_id)
            if text is None or p is None:
                continue
            ws.send(message_frame(text, user_id=self.user_id, msg_id=msg_id, trace=p.trace,
                                  stream=self.stream))  # fmt: skip
            self.resent += 1
        return done

    # -- sending ------------------------------------------------------------------------------

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        with self._conn_lock:
            if self._ws is None:
                if len(self.pending):
                    self._reconnect("connection lost")
                if self._ws is None:
                    self.connect()
            ws = self._ws
        with self._send_lock:
            p = start_message(
                run=self.run, cell=self.cell, arch=self.arch, publish=self.publish,
                stream=self.stream, user_id=self.user_id, timeout_s=self.timeout_s,
                intended_ns=intended_ns, msg_id=msg_id,
            )  # fmt: skip
            mid = p.record.msg_id
            self.pending.add(p)
            if self.max_reconnects != 0:
                self._texts[mid] = text
                if len(self._texts) > 2 * len(self.pending) + 64:
                    keep = set(self.pending.ids())
                    self._texts = {k: v for k, v in self._texts.items() if k in keep}
            frame = message_frame(
                text, user_id=self.user_id, msg_id=mid, trace=p.trace, stream=self.stream
            )
            try:
                ws.send(frame)
            except Exception as err:
                if self.max_reconnects == 0:
                    self.pending.fail_all("error", f"send failed: {err}")
                # Otherwise the message stays in flight: the reader finds the socket dead,
                # reconnects, and the resume resends it under its id.
                if self._ws is ws:
                    self._ws = None
        return p

    # -- receiving ----------------------------------------------------------------------------

    def _frame_records(self, data: str | bytes, t_ns: int) -> list[MessageRecord]:
        ev = gateway_event(data)
        rec = self.pending.handle(ev) if ev is not None else None
        if rec is None:
            return []
        self._texts.pop(rec.msg_id, None)
        if rec.status == "ok":
            self.last_reply = rec.msg_id
        return [rec]
