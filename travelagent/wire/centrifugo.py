"""Centrifugo's bidirectional JSON client protocol, both sides; pure code, no I/O.

The server side (``realtime/session.py``) reads commands with ``decode_frame`` and writes
replies and pushes; the client side (``client/centrifugo.py``, ``client/sync_realtime.py``)
writes commands with ``command`` and reads what the server sent with ``decode_server_frame``.

Design rules:
- A WebSocket text frame holds one or more JSON messages separated by newlines. Commands carry
  ``"id"`` (> 0) and exactly one request object (``connect``, ``subscribe``, ...); the empty
  object ``{}`` is a pong (client to server) or a ping (server to client).
- Replies echo the ``id`` with either a result under the method's name or ``"error"``; pushes
  carry no id and hold ``{"push": {"channel": ..., "pub"|"join"|"leave"|...: {...}}}``.
- ``decode_frame`` never raises for one bad command: it returns a ``BadCommand`` carrying the
  error to reply with, so the rest of the frame is still served. Only a line that is not JSON at
  all (no id to reply to) asks for a disconnect, as Centrifugo does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from travelagent.wire import jsoncodec, ndjson

# --- client error codes (replies) ---------------------------------------------------------
ERROR_INTERNAL = 100
ERROR_UNAUTHORIZED = 101
ERROR_UNKNOWN_CHANNEL = 102
ERROR_PERMISSION_DENIED = 103
ERROR_METHOD_NOT_FOUND = 104
ERROR_ALREADY_SUBSCRIBED = 105
ERROR_LIMIT_EXCEEDED = 106
ERROR_BAD_REQUEST = 107
ERROR_NOT_AVAILABLE = 108
ERROR_TOKEN_EXPIRED = 109
ERROR_EXPIRED = 110
ERROR_TOO_MANY_REQUESTS = 111
ERROR_UNRECOVERABLE_POSITION = 112

ERROR_MESSAGES: dict[int, str] = {
    ERROR_INTERNAL: "internal server error",
    ERROR_UNAUTHORIZED: "unauthorized",
    ERROR_UNKNOWN_CHANNEL: "unknown channel",
    ERROR_PERMISSION_DENIED: "permission denied",
    ERROR_METHOD_NOT_FOUND: "method not found",
    ERROR_ALREADY_SUBSCRIBED: "already subscribed",
    ERROR_LIMIT_EXCEEDED: "limit exceeded",
    ERROR_BAD_REQUEST: "bad request",
    ERROR_NOT_AVAILABLE: "not available",
    ERROR_TOKEN_EXPIRED: "token expired",
    ERROR_EXPIRED: "expired",
    ERROR_TOO_MANY_REQUESTS: "too many requests",
    ERROR_UNRECOVERABLE_POSITION: "unrecoverable position",
}
TEMPORARY_ERRORS = frozenset({ERROR_INTERNAL, ERROR_LIMIT_EXCEEDED, ERROR_TOO_MANY_REQUESTS})

# --- disconnect codes (WebSocket close codes) ---------------------------------------------
# 3000-3499: the client may reconnect; 3500-3999: it must not (the SDK stops).
DISCONNECT_SHUTDOWN = 3001
DISCONNECT_SLOW = 3008
DISCONNECT_NO_PONG = 3012
DISCONNECT_INVALID_TOKEN = 3500
DISCONNECT_BAD_REQUEST = 3501
DISCONNECT_STALE = 3502  # no connect command in time
DISCONNECT_CONNECTION_LIMIT = 3504
DISCONNECT_EXPIRED = 3005  # connection token expired: reconnect with a new one
DISCONNECT_PERMISSION_DENIED = 3507
DISCONNECT_MESSAGE_SIZE_LIMIT = 1009  # WebSocket "message too big", mapped by the SDKs

DISCONNECT_REASONS: dict[int, str] = {
    DISCONNECT_SHUTDOWN: "shutdown",
    DISCONNECT_SLOW: "slow",
    DISCONNECT_NO_PONG: "no pong",
    DISCONNECT_INVALID_TOKEN: "invalid token",
    DISCONNECT_BAD_REQUEST: "bad request",
    DISCONNECT_STALE: "stale",
    DISCONNECT_CONNECTION_LIMIT: "connection limit",
    DISCONNECT_EXPIRED: "expired",
    DISCONNECT_PERMISSION_DENIED: "permission denied",
    DISCONNECT_MESSAGE_SIZE_LIMIT: "message size limit",
}

METHODS: tuple[str, ...] = (
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "ping",
    "send",
    "rpc",
    "refresh",
    "sub_refresh",
)
SUPPORTED_METHODS = frozenset(
    {"connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history"}
)

MAX_CHANNEL_CHARS = 255
SUBSCRIBE_FLAG_REJECT_UNRECOVERED = 2  # client asks for error 112 instead of recovered=false


class ProtocolError(ValueError):
    """A frame cannot be read at all; the connection must be closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Command:
    id: int
    method: str
    params: dict[str, Any]


@dataclass
class Pong:
    """The empty object ``{}``: a client's answer to a server ping."""


@dataclass
class BadCommand:
    """A command that gets an error reply (or, with ``id == 0``, a disconnect)."""

    id: int
    code: int
    message: str


Message = Command | Pong | BadCommand


@dataclass
class ReplyError(Exception):
    """Raised by request handlers; becomes ``{"id":..,"error":{...}}``."""

    code: int
    message: str = ""
    temporary: bool = False

    def __post_init__(self) -> None:
        if not self.message:
            self.message = ERROR_MESSAGES.get(self.code, "error")
        if self.code in TEMPORARY_ERRORS:
            self.temporary = True

    def to_wire(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.temporary:
            err["temporary"] = True
        return err


def _decode_line(line: str) -> Message:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError(DISCONNECT_BAD_REQUEST, "bad request: invalid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(DISCONNECT_BAD_REQUEST, "bad request: command must be an object")
    if not obj:
        return Pong()
    cmd_id = obj.get("id", 0)
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool) or cmd_id < 0:
        raise ProtocolError(DISCONNECT_BAD_REQUEST, "bad request: id must be a positive integer")
    if cmd_id == 0:
        # Nothing to reply to: Centrifugo disconnects on a command without id.
        return BadCommand(0, ERROR_BAD_REQUEST, "bad request: command without id")
    methods = [m for m in METHODS if obj.get(m) is not None]
    if not methods:
        return BadCommand(cmd_id, ERROR_METHOD_NOT_FOUND, ERROR_MESSAGES[ERROR_METHOD_NOT_FOUND])
    if len(methods) > 1:
        return BadCommand(cmd_id, ERROR_BAD_REQUEST, "bad request: more than one method")
    method = methods[0]
    if method not in SUPPORTED_METHODS:
        return BadCommand(cmd_id, ERROR_METHOD_NOT_FOUND, f"method not found: {method}")
    params = obj[method]
    if not isinstance(params, dict):
        return BadCommand(cmd_id, ERROR_BAD_REQUEST, f"bad request: {method} must be an object")
    return Command(cmd_id, method, params)


def decode_frame(text: str) -> list[Message]:
    """Split a text frame into messages; raise ProtocolError if a line is not a JSON object."""
    return [_decode_line(line) for line in ndjson.lines(text)]


def dumps(obj: Any) -> str:
    return ndjson.dumps(obj)


def encode(messages: Iterable[Mapping[str, Any] | str]) -> str:
    """Join replies and pushes (dicts, or strings already encoded) into one frame."""
    return ndjson.join(messages)


# --- replies and pushes ----------------------------------------------------------------------
PING = "{}"


def reply(cmd_id: int, method: str, result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"id": cmd_id, method: dict(result or {})}


def error_reply(cmd_id: int, err: ReplyError | int, message: str = "") -> dict[str, Any]:
    if isinstance(err, int):
        err = ReplyError(err, message)
    return {"id": cmd_id, "error": err.to_wire()}


def client_info(client_id: str, user: str) -> dict[str, Any]:
    return {"client": client_id, "user": user}


def publication(
    data: Any, *, offset: int = 0, info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    pub: dict[str, Any] = {"data": data}
    if offset:
        pub["offset"] = offset
    if info:
        pub["info"] = dict(info)
    return pub


def pub_push(channel: str, pub: Mapping[str, Any]) -> dict[str, Any]:
    return {"push": {"channel": channel, "pub": dict(pub)}}


def join_push(channel: str, info: Mapping[str, Any]) -> dict[str, Any]:
    return {"push": {"channel": channel, "join": {"info": dict(info)}}}


def leave_push(channel: str, info: Mapping[str, Any]) -> dict[str, Any]:
    return {"push": {"channel": channel, "leave": {"info": dict(info)}}}


def disconnect_push(code: int, reason: str = "") -> dict[str, Any]:
    return {"push": {"disconnect": {"code": code, "reason": reason or DISCONNECT_REASONS[code]}}}


# --- request parameters ------------------------------------------------------------------------
def channel_param(params: Mapping[str, Any]) -> str:
    channel = params.get("channel")
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_CHARS:
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: channel must be a non-empty string")
    return channel


@dataclass
class SubscribeRequest:
    channel: str
    recover: bool = False
    offset: int = 0
    epoch: str = ""
    join_leave: bool = False
    flag: int = 0


def parse_subscribe(params: Mapping[str, Any]) -> SubscribeRequest:
    channel = channel_param(params)
    recover = params.get("recover", False)
    offset = params.get("offset", 0)
    epoch = params.get("epoch", "")
    flag = params.get("flag", 0)
    if isinstance(offset, str) and offset.isdigit():  # protobuf-JSON spells uint64 as a string
        offset = int(offset)
    if not isinstance(recover, bool):
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: recover must be a boolean")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: offset must be a non-negative integer")
    if not isinstance(epoch, str):
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: epoch must be a string")
    if not isinstance(flag, int) or isinstance(flag, bool):
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: flag must be an integer")
    return SubscribeRequest(
        channel=channel,
        recover=recover,
        offset=offset,
        epoch=epoch,
        join_leave=params.get("join_leave") is True,
        flag=flag,
    )


@dataclass
class HistoryRequest:
    channel: str
    limit: int = 0
    since: tuple[int, str] | None = None
    reverse: bool = False


def parse_history(params: Mapping[str, Any]) -> HistoryRequest:
    channel = channel_param(params)
    limit = params.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: limit must be an integer")
    since_obj = params.get("since")
    since: tuple[int, str] | None = None
    if since_obj is not None:
        if not isinstance(since_obj, dict):
            raise ReplyError(ERROR_BAD_REQUEST, "bad request: since must be an object")
        off = since_obj.get("offset", 0)
        ep = since_obj.get("epoch", "")
        if not isinstance(off, int) or isinstance(off, bool) or off < 0 or not isinstance(ep, str):
            raise ReplyError(ERROR_BAD_REQUEST, "bad request: since needs offset and epoch")
        since = (off, ep)
    reverse = params.get("reverse", False)
    if not isinstance(reverse, bool):
        raise ReplyError(ERROR_BAD_REQUEST, "bad request: reverse must be a boolean")
    return HistoryRequest(channel=channel, limit=limit, since=since, reverse=reverse)


# --- channels and permissions ------------------------------------------------------------------
TRAVEL_NAMESPACE = "travel"
ROOM_NAMESPACE = "room"


def split_channel(channel: str) -> tuple[str, str]:
    """``"room:lobby"`` -> ``("room", "lobby")``; a channel without ``:`` has namespace ``""``."""
    ns, sep, name = channel.partition(":")
    return (ns, name) if sep else ("", channel)


@dataclass(frozen=True)
class Grants:
    """What one connection may do: its user and the rooms it may enter (None: every room)."""

    user: str
    rooms: frozenset[str] | None = None

    @classmethod
    def build(
        cls,
        user: str,
        *,
        config_rooms: Iterable[str] | None,
        token_rooms: Iterable[str] | None = None,
    ) -> Grants:
        """Combine the service's allow-list with the token's ``rooms`` claim (already verified
        by ``travelagent.wire.tokens``: a malformed claim never gets here).

        Both restrict: a token signed by the application may narrow a user to some rooms, and
        the service's allow-list bounds every user. Neither set means every room is allowed.
        """
        rooms = None if config_rooms is None else frozenset(config_rooms)
        if token_rooms is not None:
            claim = frozenset(token_rooms)
            rooms = claim if rooms is None else rooms & claim
        return cls(user=user, rooms=rooms)


def channel_permission(grants: Grants, channel: str) -> int | None:
    """None if ``grants`` allow subscribe/publish/presence/history on ``channel``; else 103."""
    ns, name = split_channel(channel)
    if not name:
        return ERROR_PERMISSION_DENIED
    if ns == TRAVEL_NAMESPACE:
        return None if name == grants.user else ERROR_PERMISSION_DENIED
    if ns == ROOM_NAMESPACE:
        return None if grants.rooms is None or name in grants.rooms else ERROR_PERMISSION_DENIED
    return ERROR_PERMISSION_DENIED


# --- the client's side ---------------------------------------------------------------------------
PUSH_KINDS: tuple[str, ...] = (
    "pub",
    "join",
    "leave",
    "unsubscribe",
    "subscribe",
    "disconnect",
    "message",
)
PONG = "{}"


def command(cmd_id: int, method: str, params: Mapping[str, Any]) -> str:
    """One client command line: ``{"id": cmd_id, method: params}``."""
    return jsoncodec.dumps({"id": cmd_id, method: params})


def reply_error(body: Mapping[str, Any]) -> tuple[int, str] | None:
    """(code, message) of a reply's ``error``, None without one; a malformed one is code 0."""
    if "error" not in body:
        return None
    err = body["error"]
    if not isinstance(err, dict):
        return 0, str(err)
    code = err.get("code", 0)
    if not isinstance(code, int) or isinstance(code, bool):
        code = 0
    return code, str(err.get("message", ""))


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ServerReply:
    """The answer to command ``id``: ``body`` holds the result under the method, or ``error``."""

    id: int
    body: dict[str, Any]

    @property
    def error(self) -> tuple[int, str] | None:
        """(code, message) of an error reply, as the server sent them; None for a result."""
        return reply_error(self.body)

    def result(self, method: str) -> dict[str, Any]:
        result = self.body.get(method, {})
        return result if isinstance(result, dict) else {}


@dataclass
class ServerPing:
    """The empty object from the server: answer with ``PONG``."""


@dataclass
class ServerPush:
    kind: str  # one of PUSH_KINDS
    channel: str
    body: dict[str, Any]  # for "pub": {"data":..., "offset":..., "info":...}
    size: int  # characters of its line in the frame


ServerMessage = ServerReply | ServerPing | ServerPush


def _classify(msg: dict[str, Any], size: int) -> ServerMessage | None:
    cmd_id = msg.get("id", 0)
    if cmd_id:
        return ServerReply(cmd_id, msg) if _is_id(cmd_id) else None
    push = msg.get("push")
    if push is None:
        return ServerPing() if not msg else None
    if not isinstance(push, dict) or not isinstance(push.get("channel", ""), str):
        return None
    for kind in PUSH_KINDS:
        if isinstance(push.get(kind), dict):
            return ServerPush(kind, push.get("channel", ""), push[kind], size)
    return None


def decode_server_frame(text: str | bytes) -> list[ServerMessage]:
    """What a server frame holds, in order; lines a client cannot use are skipped."""
    out = []
    for obj, line in ndjson.objects(text):
        msg = _classify(obj, len(line))
        if msg is not None:
            out.append(msg)
    return out
