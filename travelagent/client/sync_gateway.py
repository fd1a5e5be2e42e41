"""A blocking, gevent-friendly gateway client (the Worker's ``/api/gateway/ws``).

Locust monkey-patches the standard library with gevent, so blocking sockets cooperate: this
client uses ``websockets.sync.client``, whose background reader thread becomes a greenlet.
One connection carries many messages; replies are matched to messages by ``id`` when the peer
echoes it, and in arrival order when it does not (a deployed original Worker), since one agent
answers its messages one at a time.

Stamps: ``client.send`` when a frame leaves, ``client.first`` on the first reply frame that
carries text (a chunk, the whole reply, or an error; the bare ``streaming`` start frame does not
count, so ``first`` is time to first content), ``client.recv`` on the final frame. The reply's
trace holds every server stamp, so the record's trace is the reply trace plus the client's own.

``PendingSet`` is the bookkeeping shared with the realtime client: it owns outstanding
messages, matches reply events to them, times them out and turns them into ``MessageRecord``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from travelagent.client.records import MessageRecord
from travelagent.wire.gateway import ServerFrameKind, message_frame, parse_server_frame
from travelagent.wire.trace import Trace, new_msg_id, now_ns

GATEWAY_PATH = "/api/gateway/ws"

OnDone = Callable[[MessageRecord], None]


def gateway_ws_url(url: str, user_id: str) -> str:
    """The gateway socket URL for ``user_id``: ``http(s)://host`` gets the standard path, an
    explicit ``ws(s)://host/path`` is kept, and ``userId`` is added to the query if absent."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"gateway URL must be http(s):// or ws(s)://, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else GATEWAY_PATH
    query = dict(parse_qsl(parts.query))
    query.setdefault("userId", user_id)
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


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


@dataclass
class Pending:
    """One message in flight."""

    record: MessageRecord
    trace: Trace
    deadline_ns: int
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class ReplyEvent:
    """One reply frame, transport-neutral: what a client saw for some message."""

    kind: str  # "start" | "chunk" | "final" | "error"
    msg_id: str | None
    size: int
    text: str = ""
    error: str = ""
    trace: Trace | None = None
    t_ns: int = 0


class PendingSet:
    """Outstanding messages of one connection; thread- and greenlet-safe."""

    def __init__(self, *, on_done: OnDone | None = None) -> None:
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()
        self.on_done = on_done
        self.ids_echoed = False  # the peer echoes message ids (else replies match in order)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, pending: Pending) -> None:
        with self._lock:
            self._pending[pending.record.msg_id] = pending

    def handle(self, ev: ReplyEvent) -> MessageRecord | None:
        """Apply a reply event; return the record if it completed a message."""
        with self._lock:
            if ev.msg_id is not None:
                self.ids_echoed = True
                p = self._pending.get(ev.msg_id)
            else:  # an id-less peer answers one message at a time, in order
                p = next(iter(self._pending.values()), None)
            if p is None:  # a late reply to a message already timed out, or someone else's
                return None
            rec = p.record
            rec.bytes += ev.size
            t = ev.t_ns or now_ns()
            if ev.kind == "start":
                rec.streaming = True
                return None
            if rec.first_ns is None:
                rec.first_ns = t
            if ev.kind == "chunk":
                rec.chunks += 1
                rec.streaming = True
                return None
            del self._pending[rec.msg_id]
        if ev.kind == "error":
            rec.status = "error"
            rec.error = ev.error or "error"
        else:
            rec.status = "ok"
            rec.recv_ns = t
        rec.trace = merge_trace(p.trace, ev.trace, first_ns=rec.first_ns, recv_ns=t)
        return self._finish(p)

    def expire(self, t_ns: int | None = None) -> list[MessageRecord]:
        """Time out every message whose deadline has passed."""
        t = now_ns() if t_ns is None else t_ns
        with self._lock:
            late = [p for p in self._pending.values() if p.deadline_ns <= t]
            for p in late:
                del self._pending[p.record.msg_id]
        out = []
        for p in late:
            p.record.status = "timeout"
            p.record.error = "no complete reply before the timeout"
            p.record.trace = p.trace
            out.append(self._finish(p))
        return out

    def fail_all(self, status: str, error: str) -> list[MessageRecord]:
        """End every outstanding message (connection lost or closed)."""
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        out = []
        for p in left:
            p.record.status = status
            p.record.error = error
            p.record.trace = p.trace
            out.append(self._finish(p))
        return out

    def next_deadline_ns(self) -> int | None:
        with self._lock:
            return min((p.deadline_ns for p in self._pending.values()), default=None)

    def _finish(self, p: Pending) -> MessageRecord:
        p.done.set()
        if self.on_done is not None:
            self.on_done(p.record)
        return p.record


def merge_trace(sent: Trace, reply: Trace | None, *, first_ns: int | None, recv_ns: int) -> Trace:
    """The reply's trace (every server stamp), with the client's stamps around it."""
    if reply is None:
        out = sent.copy()
    else:
        out = reply.copy()
        if out.get("client.send") is None:
            out.stamps[:0] = [s for s in sent.stamps if s[0] == "client.send"]
    if first_ns is not None:
        out.stamp("client.first", "client", first_ns)
    out.stamp("client.recv", "client", recv_ns)
    return out


def gateway_event(data: str | bytes) -> ReplyEvent | None:
    """Classify a gateway frame; None for frames a client ignores."""
    t = now_ns()
    frame = parse_server_frame(data)
    size = len(data)
    kind = frame.kind
    if kind is ServerFrameKind.OTHER:
        return None
    if kind is ServerFrameKind.START:
        return ReplyEvent("start", frame.id, size, t_ns=t)
    if kind is ServerFrameKind.CHUNK:
        return ReplyEvent("chunk", frame.id, size, text=frame.text, t_ns=t)
    if kind is ServerFrameKind.ERROR:
        return ReplyEvent(
            "error", frame.id, size, error=frame.error or "", trace=frame.trace, t_ns=t
        )
    return ReplyEvent("final", frame.id, size, text=frame.text, trace=frame.trace, t_ns=t)


class GatewayClient:
    """A gateway socket for one user.

    Closed loop: ``request(text)`` sends and blocks until the reply (or timeout).
    Open loop: ``send(text, intended_ns=...)`` returns at once; a second greenlet runs
    ``receive_forever()`` and each finished record goes to ``on_done``.
    """

    arch = "gateway"

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
    ) -> None:
        self.url = gateway_ws_url(url, user_id)
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
        self._ws = ws_connect(self.url, timeout_s=self.connect_timeout_s)

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

    # -- sending ------------------------------------------------------------------------------

    def send(
        self, text: str, *, intended_ns: int | None = None, msg_id: str | None = None
    ) -> Pending:
        if self._ws is None:
            self.connect()
        mid = msg_id or new_msg_id()
        trace = Trace.start(mid)
        rec = MessageRecord(
            run=self.run,
            cell=self.cell,
            arch=self.arch,
            publish=self.publish,
            streaming=bool(self.stream),
            user=self.user_id,
            agent=self.user_id,
            msg_id=mid,
            intended_ns=0,
            send_ns=0,
        )
        with self._send_lock:
            t = trace.stamp("client.send", "client")
            rec.send_ns = t
            rec.intended_ns = intended_ns if intended_ns is not None else t
            p = Pending(rec, trace, deadline_ns=t + int(self.timeout_s * 1e9))
            self.pending.add(p)
            frame = message_frame(
                text, user_id=self.user_id, msg_id=mid, trace=trace, stream=self.stream
            )
            try:
                self._ws.send(frame)
            except Exception as err:
                self.pending.fail_all("error", f"send failed: {err}")
                self._ws = None
        return p

    # -- receiving ----------------------------------------------------------------------------

    def pump(self, timeout_s: float) -> list[MessageRecord]:
        """Read frames for up to ``timeout_s`` (returns after the first frame); expire late
        messages. Returns the records that finished."""
        done = self.pending.expire()
        if self._ws is None:
            return done
        try:
            data = self._ws.recv(timeout=max(timeout_s, 0.0))
        except TimeoutError:
            data = None
        except Exception as err:  # the connection dropped: everything in flight is lost
            self._ws = None
            return done + self.pending.fail_all("lost", f"connection lost: {err}")
        if data is not None:
            ev = gateway_event(data)
            if ev is not None:
                rec = self.pending.handle(ev)
                if rec is not None:
                    done.append(rec)
        return done

    def wait(self, pending: Pending) -> MessageRecord:
        """Pump until ``pending`` finishes (single-greenlet use)."""
        while not pending.done.is_set():
            deadline = self.pending.next_deadline_ns()
            left_s = 1.0 if deadline is None else max((deadline - now_ns()) / 1e9, 0.0)
            self.pump(min(left_s, 1.0) + 0.001)
            if self._ws is None and not pending.done.is_set():
                self.pending.fail_all("lost", "connection lost")
        if self.pending.ids_echoed is False and pending.record.status == "timeout":
            # Without ids a late reply would be taken for the next message's: start afresh.
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
