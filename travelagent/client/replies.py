"""What a client does with replies, whatever its transport: pure bookkeeping, no I/O.

``PendingSet`` owns the messages one connection has in flight: it matches reply events to them
(by ``id``, or in order for a peer that echoes none, as a deployed original Worker), times them
out, and turns each into a finished ``MessageRecord`` whose trace is the reply's trace (every
server stamp) with the client's own stamps around it. ``gateway_event`` and
``classify_publication`` turn gateway frames and realtime publications into ``ReplyEvent``s.
The async clients (``aio_*``) and the gevent-friendly ones (``sync_*``) share all of it.

Stamps: ``client.send`` when a message leaves (``start_message``), ``client.first`` on the first
reply frame that carries text (a chunk, the whole reply, or an error; the bare ``streaming``
start frame does not count, so ``first`` is time to first content), ``client.recv`` on the final
frame.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from travelagent.client.records import MessageRecord
from travelagent.wire.gateway import ServerFrameKind, parse_server_frame
from travelagent.wire.trace import Trace, TraceError, new_msg_id, now_ns

GATEWAY_PATH = "/api/gateway/ws"
CLIENT_PATH = "/connection/websocket"

OnDone = Callable[[MessageRecord], None]


def bearer_headers(user_id: str, jwt_secret: str) -> dict[str, str] | None:
    """``Authorization: Bearer`` with a fresh connection token for ``user_id``; None without a
    secret."""
    if not jwt_secret:
        return None
    from travelagent.client.centrifugo import make_token

    return {"Authorization": f"Bearer {make_token(user_id, jwt_secret)}"}


def gateway_ws_url(url: str, user_id: str, room: str | None = None) -> str:
    """The gateway socket URL for ``user_id``: ``http(s)://host`` gets the standard path, an
    explicit ``ws(s)://host/path`` is kept, and ``userId`` is added to the query if absent."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"gateway URL must be http(s):// or ws(s)://, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else GATEWAY_PATH
    query = dict(parse_qsl(parts.query))
    query.setdefault("userId", user_id)
    if room:
        query.setdefault("room", room)
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def realtime_ws_url(url: str) -> str:
    """``http(s)://host`` gets the standard client path; an explicit ws(s) URL is kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"realtime URL must be http(s):// or ws(s)://, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else CLIENT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def agent_channel(user_id: str) -> str:
    return f"travel:{user_id}"


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
        # Ids in flight when the connection dropped (``cut_off``): one that times out before
        # its reply is recovered ends ``lost``, not ``timeout``.
        self._cut: set[str] = set()

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
        rec.reply = ev.text
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
            if p.record.msg_id in self._cut:
                p.record.status = "lost"
                p.record.error = "the connection dropped and the reply was not recovered"
            else:
                p.record.status = "timeout"
                p.record.error = "no complete reply before the timeout"
            p.record.trace = p.trace
            out.append(self._finish(p))
        return out

    def cut_off(self) -> list[str]:
        """Mark every message in flight as cut off by a dropped connection; return their ids."""
        with self._lock:
            ids = list(self._pending)
            self._cut.update(ids)
            return ids

    def is_cut_off(self, msg_id: str) -> bool:
        return msg_id in self._cut

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

    def get(self, msg_id: str) -> Pending | None:
        with self._lock:
            return self._pending.get(msg_id)

    def ids(self) -> list[str]:
        """The ids still waiting for a reply, oldest first."""
        with self._lock:
            return list(self._pending)

    def fail(self, msg_id: str, status: str, error: str) -> MessageRecord | None:
        """End one outstanding message with ``status``; None if it is not outstanding."""
        with self._lock:
            p = self._pending.pop(msg_id, None)
        if p is None:
            return None
        p.record.status, p.record.error, p.record.trace = status, error, p.trace
        return self._finish(p)

    def next_deadline_ns(self) -> int | None:
        with self._lock:
            return min((p.deadline_ns for p in self._pending.values()), default=None)

    def _finish(self, p: Pending) -> MessageRecord:
        self._cut.discard(p.record.msg_id)
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
    if kind is ServerFrameKind.OTHER or kind is ServerFrameKind.RESUMED:
        return None  # a resume's end is the client's business, not a reply
    if kind is ServerFrameKind.START:
        return ReplyEvent("start", frame.id, size, t_ns=t)
    if kind is ServerFrameKind.CHUNK:
        return ReplyEvent("chunk", frame.id, size, text=frame.text, t_ns=t)
    if kind is ServerFrameKind.ERROR:
        return ReplyEvent(
            "error", frame.id, size, error=frame.error or "", trace=frame.trace, t_ns=t
        )
    return ReplyEvent("final", frame.id, size, text=frame.text, trace=frame.trace, t_ns=t)


def message_data(
    text: str, *, user_id: str, msg_id: str, trace: Trace, stream: bool | None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "message",
        "text": text,
        "userId": user_id,
        "id": msg_id,
        "trace": trace.to_wire(),
    }
    if stream is not None:
        data["stream"] = stream
    return data


def classify_publication(data: Any, size: int, t_ns: int) -> ReplyEvent | None:
    """An ``agent_response`` publication as a reply event; None for anything else (echoes)."""
    if not isinstance(data, dict) or data.get("type") != "agent_response":
        return None
    msg_id = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        trace = Trace.from_wire_or_none(data.get("trace"))
    except TraceError:
        trace = None
    raw_text = data.get("text")
    text = raw_text if isinstance(raw_text, str) else ""
    if data.get("isError") or data.get("error"):
        err = data.get("error") or text or "agent error"
        return ReplyEvent("error", msg_id, size, error=str(err), trace=trace, t_ns=t_ns)
    if data.get("chunk"):
        return ReplyEvent("chunk", msg_id, size, text=text, t_ns=t_ns)
    if data.get("complete"):
        return ReplyEvent("final", msg_id, size, text=text, trace=trace, t_ns=t_ns)
    if data.get("streaming"):
        return ReplyEvent("start", msg_id, size, t_ns=t_ns)
    return ReplyEvent("final", msg_id, size, text=text, trace=trace, t_ns=t_ns)


def start_message(
    *,
    run: str,
    cell: str,
    arch: str,
    publish: str,
    stream: bool | None,
    user_id: str,
    timeout_s: float,
    intended_ns: int | None = None,
    msg_id: str | None = None,
) -> Pending:
    """A new message: its record and trace, stamped ``client.send`` now; send it right after."""
    mid = msg_id or new_msg_id()
    trace = Trace.start(mid)
    t = trace.stamp("client.send", "client")
    rec = MessageRecord(
        run=run, cell=cell, arch=arch, publish=publish, streaming=bool(stream), user=user_id,
        agent=user_id, msg_id=mid, intended_ns=t if intended_ns is None else intended_ns,
        send_ns=t,
    )  # fmt: skip
    return Pending(rec, trace, deadline_ns=t + int(timeout_s * 1e9))


# -- gateway resume (docs/protocol.md): what a reconnected client does -----------------------------
RECONNECT_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def may_reconnect(code: Any) -> bool:
    """Centrifugo's rule: a disconnect code in 3500-3999 (or 4500-4999) means do not."""
    return not (isinstance(code, int) and (3500 <= code <= 3999 or 4500 <= code <= 4999))


def reconnect_delay_s(attempt: int) -> float:
    """How long to wait before reconnect attempt ``attempt`` (0, 1, ...): doubling, capped."""
    return RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]


def reconnect_attempts(budget_s: float, max_attempts: int | None) -> Iterator[int]:
    """The blocking clients' reconnect schedule: sleeps ``reconnect_delay_s`` before each
    attempt, then yields its number (1, 2, ...), until ``budget_s`` would be overrun by the next
    wait or ``max_attempts`` (None: no cap) are made. (Under gevent the sleep yields.)"""
    start, attempt = time.monotonic(), 0
    while max_attempts is None or attempt < max_attempts:
        left = budget_s - (time.monotonic() - start)
        delay = reconnect_delay_s(attempt)
        if attempt > 0 and left < delay:
            return  # the budget is spent
        time.sleep(min(delay, max(0.0, left)))
        attempt += 1
        yield attempt


@dataclass
class ResumePlan:
    """What a ``resumed`` answer leaves to do: ``resend`` these ids (same id, so the worker
    never runs a turn twice), end ``lost`` these (the worker confirmed it never received them
    and resending is off)."""

    resend: list[str]
    lost: list[str]


def plan_after_resume(
    states: dict[str, str] | None, asked: list[str], still_pending: list[str], *, resend: bool
) -> ResumePlan:
    """``states``: the ``resumed`` frame's state per id asked about (None: the server does not
    resume, e.g. the original Worker); ``asked``: the ids the resume named; ``still_pending``:
    those not completed by a replay since. ``done`` ids were replayed; ``started`` ones are being
    answered or were cut off, and a resend joins or resumes them; ``new`` ones never arrived."""
    waiting = [i for i in asked if i in set(still_pending)]
    if states is None:
        return ResumePlan(waiting if resend else [], [])
    plan = ResumePlan([], [])
    for msg_id in waiting:
        # A done one was replayed before the resumed frame, so it is not waiting any more; if
        # it is, a resend gets the stored reply.
        if resend:
            plan.resend.append(msg_id)
        elif states.get(msg_id) == "new":  # not asked about (over the cap): not confirmed
            plan.lost.append(msg_id)
    return plan
