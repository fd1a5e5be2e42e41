"""What one gateway socket accepts: binding, limits and the trace start; pure code, no I/O.

Design rules (every rule that decides what a gateway frame becomes lives here):
- The socket is bound to one user: ``userId`` in the query, else the first message's. A later
  message naming another user is refused; a message on an unbound socket without a user too.
- A room in the query joins the bound user to that room once the user is known.
- At most ``max_inflight`` messages are in flight on one socket; one more is refused.
- An accepted message keeps the client's trace (or starts one with its id) and gets
  ``worker.recv`` at its arrival time, unless the trace is already full.
- A refusal is an error frame and the socket stays open.

``handle_gateway_websocket`` (``gateway.py``) is the adapter: it reads frames, asks
``receive_text`` with the arrival time and the count of replies still in flight, and writes
the refusal or hands the accepted message to its agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace

BINARY_REFUSAL = "binary frames are not supported; send JSON text frames"


class QueryError(ValueError):
    """The socket's query string is refused (400) before the upgrade."""


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
class Refuse:
    """Answer with an error frame carrying ``reason``; the socket stays open. ``join_room`` as
    in ``Accept``: the user is bound even when its first message is refused for the limit."""

    reason: str
    user_id: str | None = None
    msg_id: str | None = None
    join_room: str | None = None


class GatewaySession:
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

    def initial_room_binding(self) -> tuple[str, str] | None:
        """(user, room) to join before the upgrade, when the query names both."""
        if self.room and self.user_id:
            return self.user_id, self.room
        return None

    def receive_binary(self) -> Refuse:
        return Refuse(BINARY_REFUSAL, self.user_id)

    def receive_text(self, text: str, t_ns: int, *, inflight: int = 0) -> Accept | Refuse:
        """What the frame ``text``, read at ``t_ns``, becomes with ``inflight`` replies pending."""
        try:
            cm = gw.parse_client_frame(text, max_frame_bytes=self.max_frame_bytes)
        except gw.FrameError as err:
            return Refuse(str(err), self.user_id)
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
