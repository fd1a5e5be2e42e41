"""A blocking, gevent-friendly gateway client (the Worker's ``/api/gateway/ws``).

Locust monkey-patches the standard library with gevent, so blocking sockets cooperate: this
client uses ``websockets.sync.client``, whose background reader thread becomes a greenlet.
One connection carries many messages; replies are matched to messages by ``id`` when the peer
echoes it, and in arrival order when it does not (a deployed original Worker), since one agent
answers its messages one at a time.

Reply bookkeeping (stamps, matching, timeouts, records) is ``travelagent.client.replies``,
shared with the realtime client and the async clients; this module is the socket layer.
"""

from __future__ import annotations

import threading
from typing import Any

from travelagent.client.records import MessageRecord
from travelagent.client.replies import (
    OnDone,
    Pending,
    PendingSet,
    bearer_headers,
    gateway_event,
    gateway_ws_url,
    start_message,
)
from travelagent.wire.gateway import message_frame
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
    """Open a long-lived ``websockets.sync`` connection (not as a context manager)."""
    from websockets.sync.client import connect

    kwargs: dict[str, Any] = {
        "open_timeout": timeout_s,
        "max_size": 16 * 1024 * 1024,
        "additional_headers": headers,
        # Pings from this side would be noise in latency runs; servers ping if they want to.
        "ping_interval": None,
        "compression": None,
    }
    try:
        return connect(url, legacy=True, **kwargs)
    except TypeError:  # websockets < 16 has no ``legacy`` flag and behaves that way already
        return connect(url, **kwargs)


class SocketClient:
    """The blocking socket layer both sync clients share: one ``websockets.sync`` connection,
    its ``PendingSet``, and the loops that read it. Subclasses say how a frame becomes records
    (``_frame_records``) and how a message is sent (``send``)."""

    # A peer that echoes no ids gets its replies matched in order; after a timeout a late reply
    # would be taken for the next message's, so such a connection starts afresh.
    restart_after_unmatched_timeout = False
    _ws: Any
    pending: PendingSet

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        raise NotImplementedError

    def _frame_records(self, data: str | bytes, t_ns: int) -> list[MessageRecord]:
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def close(self) -> list[MessageRecord]:
        """Close the socket; messages still outstanding end as ``lost``."""
        # Records first: closing waits for the peer's close frame, and a stopping load user
        # may be killed during that wait.
        lost = self.pending.fail_all("lost", "connection closed before the reply")
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
        if self._ws is None:
            return done
        try:
            data = self._ws.recv(timeout=max(timeout_s, 0.0))
        except TimeoutError:
            return done
        except Exception as err:  # the connection dropped: everything in flight is lost
            self._ws = None
            return done + self.pending.fail_all("lost", f"connection lost: {err}")
        return done + self._frame_records(data, now_ns())

    def wait(self, pending: Pending) -> MessageRecord:
        """Pump until ``pending`` finishes (single-greenlet use)."""
        while not pending.done.is_set():
            deadline = self.pending.next_deadline_ns()
            left_s = 1.0 if deadline is None else max((deadline - now_ns()) / 1e9, 0.0)
            self.pump(min(left_s, 1.0) + 0.001)
            if self._ws is None and not pending.done.is_set():
                self.pending.fail_all("lost", "connection lost")
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
            if self._ws is None:
                self.pending.expire()
                stop.wait(0.05)
                continue
            self.pump(0.2)


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
    ) -> None:
        self.url = gateway_ws_url(url, user_id)
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
        self._ws = ws_connect(
            self.url,
            timeout_s=self.connect_timeout_s,
            headers=bearer_headers(self.user_id, self.jwt_secret),
        )

    # -- sending ------------------------------------------------------------------------------

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        if self._ws is None:
            self.connect()
        with self._send_lock:
            p = start_message(
                run=self.run, cell=self.cell, arch=self.arch, publish=self.publish,
                stream=self.stream, user_id=self.user_id, timeout_s=self.timeout_s,
                intended_ns=intended_ns, msg_id=msg_id,
            )  # fmt: skip
            self.pending.add(p)
            frame = message_frame(
                text, user_id=self.user_id, msg_id=p.record.msg_id, trace=p.trace,
                stream=self.stream,
            )  # fmt: skip
            try:
                self._ws.send(frame)
            except Exception as err:
                self.pending.fail_all("error", f"send failed: {err}")
                self._ws = None
        return p

    # -- receiving ----------------------------------------------------------------------------

    def _frame_records(self, data: str | bytes, t_ns: int) -> list[MessageRecord]:
        ev = gateway_event(data)
        rec = self.pending.handle(ev) if ev is not None else None
        return [rec] if rec is not None else []
