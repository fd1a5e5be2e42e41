"""``GET /api/gateway/ws``: the direct WebSocket path, client → worker → TravelAgent.

The adapter around ``GatewaySession`` (``gateway_session.py``), which holds the rules: who is
admitted (a token's ``sub``, or on an open gateway ``userId`` in the query or the first
message), the one agent the socket is bound to, and a cap on messages in flight. Each accepted
message is handed to its agent as a task, so the reader keeps reading (and answering bad
frames at once) while the agent works; the agent's input gate keeps messages in order.

Resume (docs/protocol.md): a ``resume`` frame, or ``?resumeAfter=`` on connect, is answered
inline, before the next frame is read: the agent's committed replies after the named one (and
of the ids the client still waits for) go out as ``replay`` frames in commit order, then one
``resumed`` frame. A reply carries the trace its first delivery had while this worker still
holds it (``ReplayTraces``, memory only), else a trace of its own with the replay's
``worker.send``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from travelagent.agent.base import Agent, AgentDirectory
from travelagent.agent.travel_agent import AgentError
from travelagent.agent.turns import UnknownMessage
from travelagent.limits import hold_user, release_user
from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace, now_ns
from travelagent.worker.config import WorkerConfig
from travelagent.worker.gateway_session import (
    Accept,
    AuthError,
    GatewaySession,
    QueryError,
    Refuse,
    Resume,
)
from travelagent.worker.keys import (
    CONFIG,
    DIRECTORY,
    PER_ADDRESS,
    PER_USER,
    ROOMS,
    STATS,
    USER_SLOT,
)

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) above ``max_frame_bytes``: the hard cap is the limit, so a
# frame too big for the codec is never read into memory first.

_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class ReplayTraces:
    """The final traces of recent replies, by (user, msg id): what a replay of a reply this
    worker sent carries. At most ``per_user`` per user (a resume replays what one connection
    missed, a few replies) and ``max_entries`` in all, the least recently used user's oldest
    first; a replay whose trace is gone carries a fresh one. So a steady load from the same
    users holds a fixed number of traces, not the last ``max_entries`` messages'."""

    def __init__(self, max_entries: int = 10_000, *, per_user: int = 32) -> None:
        if max_entries < 1 or per_user < 1:
            raise ValueError("max_entries and per_user must be at least 1")
        self.max_entries, self.per_user = max_entries, per_user
        self._users: OrderedDict[str, OrderedDict[str, Trace]] = OrderedDict()
        self._n = 0

    def keep(self, user_id: str, msg_id: str, trace: Trace) -> None:
        mine = self._users.get(user_id)
        if mine is None:
            mine = self._users[user_id] = OrderedDict()
        self._users.move_to_end(user_id)
        self._n += msg_id not in mine
        mine[msg_id] = trace.copy()
        mine.move_to_end(msg_id)
        while len(mine) > self.per_user:
            mine.popitem(last=False)
            self._n -= 1
        while self._n > self.max_entries:
            oldest_user, theirs = next(iter(self._users.items()))
            theirs.popitem(last=False)
            self._n -= 1
            if not theirs:
                del self._users[oldest_user]

    def get(self, user_id: str, msg_id: str) -> Trace | None:
        mine = self._users.get(user_id)
        trace = None if mine is None else mine.get(msg_id)
        return None if trace is None else trace.copy()

    def __len__(self) -> int:
        return self._n


_REPLAY_TRACES: weakref.WeakKeyDictionary[web.Application, ReplayTraces] = (
    weakref.WeakKeyDictionary()
)


def replay_traces(app: web.Application) -> ReplayTraces:
    traces = _REPLAY_TRACES.get(app)
    if traces is None:
        traces = _REPLAY_TRACES[app] = ReplayTraces()
    return traces


class SocketWriter:
    """Frames out of one gateway socket, one at a time. The lock is made on the first send:
    an idle socket holds only this small object (docs/bench.md, "Memory")."""

    __slots__ = ("_lock", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._lock: asyncio.Lock | None = None

    async def send(self, frame: str) -> None:
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        async with lock:
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                pass  # the client went away; the reader sees the close next


class SocketSink:
    """A ReplySink over one gateway socket; stamps ``worker.send`` on the final frame."""

    def __init__(
        self,
        writer: SocketWriter,
        *,
        user_id: str,
        msg_id: str,
        process: str,
        traces: ReplayTraces | None = None,
    ) -> None:
        self.writer = writer
        self.user_id, self.msg_id, self.process = user_id, msg_id, process
        self.traces = traces

    async def _send(self, frame: str) -> None:
        if self.writer.ws.closed:
            return  # nobody is left to tell
        await self.writer.send(frame)

    async def start(self) -> None:
        await self._send(gw.stream_start_frame(user_id=self.user_id, msg_id=self.msg_id))

    async def chunk(self, text: str) -> None:
        await self._send(gw.chunk_frame(text, user_id=self.user_id, msg_id=self.msg_id))

    def _keep(self, trace: Trace | None) -> None:
        if trace is not None:
            trace.try_stamp("worker.send", self.process)
            if self.traces is not None:  # kept even if the socket is gone: a resume wants it
                self.traces.keep(self.user_id, self.msg_id, trace)

    async def complete(self, text: str, trace: Trace | None) -> None:
        self._keep(trace)
        await self._send(
            gw.complete_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )

    async def response(self, text: str, trace: Trace | None) -> None:
        self._keep(trace)
        await self._send(
            gw.response_frame(text, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )

    async def error(self, error: str, trace: Trace | None) -> None:
        if trace is not None:
            trace.try_stamp("worker.send", self.process)
        await self._send(
            gw.error_frame(error, user_id=self.user_id, msg_id=self.msg_id, trace=trace)
        )


async def handle_gateway_websocket(request: web.Request) -> web.StreamResponse:
    per_address = request.app[PER_ADDRESS]
    address = request.remote or ""
    if not per_address.acquire(address):
        request.app[STATS]["gateway_refused_per_address"] += 1
        raise web.HTTPTooManyRequests(text="too many connections from this address")
    # The socket is served here, not in a coroutine of its own: one frame less per open socket.
    try:
        cfg: WorkerConfig = request.app[CONFIG]
        directory: AgentDirectory = request.app[DIRECTORY]
        stats = request.app[STATS]
        session, resume = _admit(request, cfg, stats)
        rooms = request.app[ROOMS]
        bound: list[tuple[str, str]] | None = None  # undone when the socket closes
        if (binding := session.initial_room_binding()) is not None:
            rooms.bind(binding[0], binding[1], directory.get(binding[0]))
            bound = [binding]
        # Uncompressed, as the realtime service's sockets: deflating frames of a few hundred
        # bytes cost more CPU per message than any other step of sending them. aiohttp's reader
        # refuses an uncompressed frame of ``max_msg_size`` bytes or more (``>=``), hence the
        # + 1: a frame of exactly ``max_frame_bytes`` is served, one byte more is closed with
        # 1009.
        ws = web.WebSocketResponse(
            max_msg_size=cfg.max_frame_bytes + 1, heartbeat=30.0, compress=False
        )
        writer = SocketWriter(ws)
        inflight: set[asyncio.Task[None]] | None = None  # made on the first accepted message
        try:
            await ws.prepare(request)
        except BaseException:
            for bound_user, bound_room in bound or ():
                rooms.unbind(bound_user, bound_room)
            raise
        stats["gateway_sockets"] += 1
        traces = replay_traces(request.app)
        try:
            if resume is not None:
                await _resume(
                    writer.send, directory.get(resume.user_id), resume, traces=traces,
                    stats=stats, process=cfg.process,
                )  # fmt: skip
                resume = None
            # ``receive()`` rather than ``async for``: one coroutine frame less per socket.
            while (msg := await ws.receive()).type not in _CLOSED:
                t_recv = now_ns()
                if msg.type is WSMsgType.BINARY:
                    decision: Accept | Resume | Refuse = session.receive_binary()
                elif msg.type is WSMsgType.TEXT:
                    n = len(inflight) if inflight else 0
                    decision = session.receive_text(msg.data, t_recv, inflight=n)
                else:
                    continue  # close/ping handled by aiohttp
                if decision.join_room is not None:
                    user = decision.user_id
                    assert user is not None
                    rooms.bind(user, decision.join_room, directory.get(user))
                    if bound is None:
                        bound = []
                    bound.append((user, decision.join_room))
                if isinstance(decision, Refuse):
                    stats["gateway_rejected"] += 1
                    frame = gw.error_frame(
                        decision.reason, user_id=decision.user_id, msg_id=decision.msg_id
                    )
                    await writer.send(frame)
                    del msg, decision, frame  # an idle socket keeps nothing of its last frame
                    continue
                if isinstance(decision, Resume):
                    agent = directory.get(decision.user_id)
                    await _resume(
                        writer.send, agent, decision, traces=traces, stats=stats,
                        process=cfg.process,
                    )  # fmt: skip
                    del msg, decision, agent
                    continue
                sink = SocketSink(
                    writer, user_id=decision.user_id, msg_id=decision.msg_id,
                    process=cfg.process, traces=traces,
                )  # fmt: skip
                agent = directory.get(decision.user_id)
                task = asyncio.create_task(
                    agent.on_message(
                        sink,
                        decision.text,
                        trace=decision.trace,
                        stream=decision.stream,
                        msg_id=decision.msg_id,
                    )
                )
                stats["gateway_messages"] += 1
                if inflight is None:
                    inflight = set()
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                # The turn's task holds what it needs; the socket, idle until the next frame,
                # keeps neither the frame, nor the sink, nor the task once it is done.
                del msg, decision, sink, agent, task
        finally:
            # Replies still being produced are allowed to finish (their state commits), but with
            # the socket gone they have nowhere to go; wait for them so nothing is cut half-way.
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            for bound_user, bound_room in bound or ():
                rooms.unbind(bound_user, bound_room)
            stats["gateway_sockets"] -= 1
        return ws
    finally:
        per_address.release(address)
        release_user(request, USER_SLOT)


def _admit(
    request: web.Request, cfg: WorkerConfig, stats: Counter[str]
) -> tuple[GatewaySession, Resume | None]:
    """Admit the socket before the upgrade (or raise its HTTP refusal): its session, and the
    resume asked for on connect (``?resumeAfter=``), if any. A helper, so that what admission
    needed (the token's claims, the query) is not held by the open socket's frame."""
    try:
        admission = GatewaySession.admit(
            _query(request),
            request.headers,
            policy=cfg.token_policy(),
            open_access=cfg.gateway_open,
            now_s=time.time(),
        )
    except QueryError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    except AuthError as err:
        stats["gateway_refused_auth"] += 1
        if err.status == 401:
            raise web.HTTPUnauthorized(text=str(err)) from None
        raise web.HTTPForbidden(text=str(err)) from None
    if not hold_user(request, USER_SLOT, request.app[PER_USER], admission.user_id):
        stats["gateway_refused_per_user"] += 1
        raise web.HTTPTooManyRequests(text="too many connections for this user")
    session = GatewaySession(
        user_id=admission.user_id,
        room=admission.room,
        max_frame_bytes=cfg.max_frame_bytes,
        max_inflight=cfg.max_inflight_per_socket,
        default_stream=cfg.stream,
        process=cfg.process,
    )
    resume = None
    if admission.resume_after is not None and admission.user_id is not None:
        resume = Resume(admission.user_id, admission.resume_after)
    return session, resume


def _query(request: web.Request) -> dict[str, str]:
    """The socket request's query, the first value of each name as in ``request.query``, but
    parsed here and not cached on the request (which every open socket keeps)."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True):
        query.setdefault(name, value)
    return query


async def _resume(
    send: Callable[[str], Awaitable[None]],
    agent: Agent,
    resume: Resume,
    *,
    traces: ReplayTraces,
    stats: Counter[str],
    process: str,
) -> None:
    """Replay ``resume.user_id``'s committed replies after ``resume.after`` and of its pending
    ids, in commit order, then the ``resumed`` frame (or its error)."""
    stats["gateway_resumes"] += 1
    user = resume.user_id
    try:
        found = await agent.replies_after(resume.after, resume.pending)
    except UnknownMessage as err:
        stats["gateway_resume_unknown"] += 1
        await send(gw.resumed_frame(resume.after, error=str(err)))
        return
    except AgentError as err:
        await send(gw.resumed_frame(resume.after, error=f"replies cannot be read: {err}"))
        return
    for reply in found.replies:
        trace = traces.get(user, reply.msg_id)
        if trace is None:
            trace = Trace.start(reply.msg_id)
            trace.try_stamp("worker.send", process)
        text = reply.reply or ""
        await send(gw.replay_frame(text, user_id=user, msg_id=reply.msg_id, trace=trace))
    stats["gateway_replayed"] += len(found.replies)
    await send(
        gw.resumed_frame(resume.after, replayed=len(found.replies), pending=dict(found.pending))
    )
