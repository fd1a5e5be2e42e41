"""What one gateway socket accepts: admission, binding, limits and the trace start; pure code.

Design rules (every rule that decides who gets in and what a gateway frame becomes lives here):
- Admission (``admit``), before the upgrade: a token (``?token=`` or ``Authorization: Bearer``)
  is the realtime service's HS256 JWT, verified by ``travelagent.wire.tokens``; the socket's
  user is its ``sub``. A bad or expired token is refused (401) even where tokens are optional,
  a ``userId`` in the query other than ``sub`` too (403), and a ``room`` the token does not
  grant (403; the same rule as the realtime service's ``room:`` channels).
- Without a token the socket is admitted only when the gateway is open (loopback, or the
  explicitly insecure flag): then, as in the original Worker, the user comes from the query or
  the first message. Otherwise 401.
- The socket is bound to one user: the token's, else the query's, else the first message's. A
  later message naming another user is refused; a message on an unbound socket without a user
  too.
- A room in the query joins the bound user to that room once the user is known; the adapter
  undoes the binding when the socket closes.
- At most ``max_inflight`` messages are in flight on one socket; one more is refused.
- An accepted message keeps the client's trace (or starts one with its id) and gets
  ``worker.recv`` at its arrival time, unless the trace is already full.
- A resume (``{"type":"resume"}`` or ``?resumeAfter=`` on connect) asks for the bound user's
  committed replies only: it binds the socket like a message, so a token's socket can never
  resume another user's turns, and an open gateway's only the user it is bound to.
- A refusal is an error frame and the socket stays open.

``handle_gateway_websocket`` (``gateway.py``) is the adapter: it reads frames, asks
``receive_text`` with the arrival time and the count of replies still in flight, and writes
the refusal or hands the accepted message to its agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from travelagent.wire import centrifugo as cf
from travelagent.wire import gateway as gw
from travelagent.wire.tokens import TokenError, TokenPolicy, bearer_token, verify_token
from travelagent.wire.trace import Trace

BINARY_REFUSAL = "binary frames are not supported; send JSON text frames"


class QueryError(ValueError):
    """The socket's query string is refused (400) before the upgrade."""


class AuthError(ValueError):
    """The socket is refused before the upgrade: ``status`` 401 (no or bad token) or 403 (the
    token does not allow what the query asks)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Admission:
    """Who a socket is: ``user_id`` (None: not known until the first message, open gateway
    only), the ``room`` to join, and whether a verified token said so."""

    user_id: str | None
    room: str | None
    authenticated: bool
    resume_after: str | None = None  # ?resumeAfter=: replay what followed that reply at once


@dataclass(frozen=True)
class Accept:
    """Hand ``text`` to ``user``'s agent; ``join_room`` is set the first time a user is bound."""

    user_id: str
    msg_id: str
    text: str
    trace: Trace
    stream: bool
    join_room: str | None = None


@dataclass(frozen=True)
class Resume:
    """Send ``user``'s committed replies after ``after`` and of ``pending`` (``wire.gateway``,
    ``ResumeRequest``), then the ``resumed`` frame; ``join_room`` as in ``Accept``."""

    user_id: str
    after: str | None
    pending: tuple[str, ...] = ()
    join_room: str | None = None


@dataclass(frozen=True)
class Refuse:
    """Answer with an error frame carrying ``reason``; the socket stays open. ``join_room`` as
    in ``Accept``: the user is bound even when its first message is refused for the limit."""

    reason: str
    user_id: str | None = None
    msg_id: str | None = None
    join_room: str | None = None


class GatewaySession:
    # One per open socket: slots, not a per-instance dict (docs/bench.md, "Memory").
    __slots__ = ("default_stream", "max_frame_bytes", "max_inflight", "process", "room", "user_id")

    def __init__(
        self,
        *,
        user_id: str | None = None,
        room: str | None = None,
        max_frame_bytes: int = gw.DEFAULT_MAX_FRAME_BYTES,
        max_inflight: int = 64,
        default_stream: bool = True,
        process: str = "worker",
    ) -> None:
        self.user_id, self.room = user_id, room
        self.max_frame_bytes, self.max_inflight = max_frame_bytes, max_inflight
        self.default_stream, self.process = default_stream, process

    @staticmethod
    def parse_query(query: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The socket query's (``userId``, ``room``), either None if absent; raise QueryError."""
        user = query.get("userId") or None
        if user is not None and not gw.valid_user_id(user):
            raise QueryError("userId must be 1-128 printable characters, no '/'")
        room = query.get("room") or None
        if room is not None and not gw.valid_user_id(room):
            raise QueryError("room must be 1-128 printable characters, no '/'")
        return user, room

    @staticmethod
    def admit(
        query: Mapping[str, str],
        headers: Mapping[str, str],
        *,
        policy: TokenPolicy,
        open_access: bool,
        now_s: float,
    ) -> Admission:
        """Whether, and as whom, a socket request gets in; raise QueryError or AuthError."""
        user, room = GatewaySession.parse_query(query)
        resume_after = query.get("resumeAfter") or None
        if resume_after is not None and not gw.valid_msg_id(resume_after):
            raise QueryError(f"resumeAfter must be 1-{gw.MAX_MSG_ID_CHARS} characters")
        token = bearer_token(query, headers)
        if token is None:
            if not open_access:
                raise AuthError(401, "token required: ?token=... or Authorization: Bearer ...")
            if resume_after is not None and user is None:
                raise QueryError("resumeAfter needs the user: a token or ?userId=")
            return Admission(user, room, authenticated=False, resume_after=resume_after)
        try:
            claims = verify_token(token, policy, now_s=now_s)
        except TokenError as err:
            raise AuthError(401, f"invalid token: {err}") from None
        if user is not None and user != claims.user:
            raise AuthError(403, "userId differs from the token's sub")
        if room is not None:
            grants = cf.Grants.build(claims.user, config_rooms=None, token_rooms=claims.rooms)
            if cf.channel_permission(grants, f"{cf.ROOM_NAMESPACE}:{room}") is not None:
                raise AuthError(403, f"the token does not grant room {room!r}")
        return Admission(claims.user, room, authenticated=True, resume_after=resume_after)

    def initial_room_binding(self) -> tuple[str, str] | None:
        """(user, room) to join before the upgrade, when the query names both."""
        if self.room and self.user_id:
            return self.user_id, self.room
        return None

    def receive_binary(self) -> Refuse:
        return Refuse(BINARY_REFUSAL, self.user_id)

    def receive_text(self, text: str, t_ns: int, *, inflight: int = 0) -> Accept | Resume | Refuse:
        """What the frame ``text``, read at ``t_ns``, becomes with ``inflight`` replies pending."""
        try:
            cm = gw.parse_gateway_frame(text, max_frame_bytes=self.max_frame_bytes)
        except gw.FrameError as err:
            return Refuse(str(err), self.user_id)
        if isinstance(cm, gw.ResumeRequest):
            return self._resume(cm)
        user = self.user_id or cm.user_id
        if user is None:
            return Refuse("userId required: in the query (?userId=...) or in the message")
        join_room = None
        if self.user_id is None:
            self.user_id = user
            join_room = self.room or None
        elif cm.user_id is not None and cm.user_id != self.user_id:
            return Refuse(f"this socket is bound to userId {self.user_id!r}", self.user_id, cm.id)
        if inflight >= self.max_inflight:
            reason = f"more than {self.max_inflight} messages in flight on this socket"
            return Refuse(reason, self.user_id, cm.id, join_room)
        trace = cm.trace or Trace.start(cm.id)
        msg_id = cm.id or trace.id
        trace.try_stamp("worker.recv", self.process, t_ns=t_ns)
        stream = self.default_stream if cm.stream is None else cm.stream
        return Accept(user, msg_id, cm.text, trace, stream, join_room)

    def _resume(self, req: gw.ResumeRequest) -> Resume | Refuse:
        user = self.user_id or req.user_id
        if user is None:
            return Refuse("userId required: in the query (?userId=...) or in the resume")
        join_room = None
        if self.user_id is None:
            self.user_id = user
            join_room = self.room or None
        elif req.user_id is not None and req.user_id != self.user_id:
            return Refuse(f"this socket is bound to userId {self.user_id!r}", self.user_id)
        return Resume(user, req.after, req.pending, join_room)
