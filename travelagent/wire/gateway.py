"""The gateway wire format, as spoken by the original Worker; pure code, no I/O.

Client to worker: ``{"type":"message","text":...,"userId":...}``, optionally with ``"id"``,
``"trace"`` and ``"stream"`` (a per-message override of the worker's streaming default).

Resume (an addition; the original Worker knows neither frame): a client that reconnects sends
``{"type":"resume","after":<last reply's id>,"pending":[<ids still waiting>]}`` (or connects
with ``?resumeAfter=<id>``); the worker sends every committed reply after that one and of the
pending ids as ``{"type":"response",...,"replay":true}``, in commit order, then
``{"type":"resumed","after":...,"replayed":n,"pending":{<id>:"done"|"started"|"new"}}``, or
``{"type":"resumed","after":...,"error":...}`` for an id it does not know.

Worker to client: ``{"type":"response","text":...,"userId":...}`` or ``{"type":"response",
"error":...}``. A streamed reply is a start frame with ``"streaming":true``, chunk frames with
``"chunk":true`` carrying new text, and a final frame with ``"complete":true`` carrying the whole
text. Every frame may carry ``"id"`` and ``"trace"``; unknown keys are ignored by both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from travelagent.wire.trace import Trace, TraceError

DEFAULT_MAX_FRAME_BYTES = 1 << 20  # 1 MiB
MAX_USER_ID_CHARS = 128
MAX_MSG_ID_CHARS = 128


class FrameError(ValueError):
    """A frame from a peer cannot be accepted; ``str(err)`` is the reason sent back."""


@dataclass
class ClientMessage:
    text: str
    user_id: str | None = None
    id: str | None = None
    trace: Trace | None = None
    stream: bool | None = None


def valid_user_id(user_id: Any) -> bool:
    return (
        isinstance(user_id, str)
        and 0 < len(user_id) <= MAX_USER_ID_CHARS
        and user_id.isprintable()
        and "/" not in user_id
    )


@dataclass
class ResumeRequest:
    """``{"type":"resume","after":<msg id>|null,"pending":[<msg id>...]}``: send the committed
    replies after message ``after`` (the last reply the client saw), and say what became of
    each ``pending`` id (replaying those done). ``userId`` as in a message."""

    after: str | None
    pending: tuple[str, ...] = ()
    user_id: str | None = None


MAX_RESUME_PENDING = 256


def valid_msg_id(msg_id: Any) -> bool:
    return isinstance(msg_id, str) and 0 < len(msg_id) <= MAX_MSG_ID_CHARS


def parse_gateway_frame(
    data: str | bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> ClientMessage | ResumeRequest:
    """Decode one client frame, a message or a resume; raise FrameError with the reason."""
    obj = _decode(data, max_frame_bytes)
    if obj.get("type") == "resume":
        return _resume(obj)
    return _message(obj, expected="'message' or 'resume'")


def _resume(obj: dict[str, Any]) -> ResumeRequest:
    after = obj.get("after")
    if after is not None and not valid_msg_id(after):
        raise FrameError(f"resume: 'after' must be a message id (1-{MAX_MSG_ID_CHARS} characters)")
    pending = obj.get("pending", [])
    if (
        not isinstance(pending, list)
        or len(pending) > MAX_RESUME_PENDING
        or not all(valid_msg_id(p) for p in pending)
    ):
        raise FrameError(f"resume: 'pending' must be a list of at most {MAX_RESUME_PENDING} ids")
    user_id = obj.get("userId")
    if user_id is not None and not valid_user_id(user_id):
        raise FrameError(f"'userId' must be 1-{MAX_USER_ID_CHARS} printable characters, no '/'")
    return ResumeRequest(after, tuple(dict.fromkeys(pending)), user_id)


def parse_client_frame(
    data: str | bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> ClientMessage:
    """Decode one message frame or raise FrameError with a reason fit for an error frame."""
    return _message(_decode(data, max_frame_bytes))


def _decode(data: str | bytes, max_frame_bytes: int) -> dict[str, Any]:
    if isinstance(data, bytes | bytearray):
        raise FrameError("binary frames are not supported; send JSON text frames")
    # A str of n characters holds n to 4n UTF-8 bytes: encode only when it could matter.
    if len(data) > max_frame_bytes or (
        len(data) * 4 > max_frame_bytes and len(data.encode()) > max_frame_bytes
    ):
        raise FrameError(f"frame exceeds the {max_frame_bytes}-byte limit")
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        raise FrameError("invalid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("frame must be a JSON object")
    return obj


def _message(obj: dict[str, Any], *, expected: str = "'message'") -> ClientMessage:
    kind = obj.get("type")
    if kind != "message":
        raise FrameError(f"unknown type {kind!r}; expected {expected}")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("'text' must be a non-empty string")
    user_id = obj.get("userId")
    if user_id is not None and not valid_user_id(user_id):
        raise FrameError(f"'userId' must be 1-{MAX_USER_ID_CHARS} printable characters, no '/'")
    msg_id = obj.get("id")
    if msg_id is not None and (
        not isinstance(msg_id, str) or not msg_id or len(msg_id) > MAX_MSG_ID_CHARS
    ):
        raise FrameError("'id' must be a non-empty string")
    stream = obj.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise FrameError("'stream' must be true or false")
    try:
        trace = Trace.from_wire_or_none(obj.get("trace"))
    except TraceError as err:
        raise FrameError(f"bad trace: {err}") from None
    if trace is not None and msg_id is None:
        msg_id = trace.id
    return ClientMessage(text=text, user_id=user_id, id=msg_id, trace=trace, stream=stream)


def message_frame(
    text: str,
    *,
    user_id: str | None = None,
    msg_id: str | None = None,
    trace: Trace | None = None,
    stream: bool | None = None,
) -> str:
    obj: dict[str, Any] = {"type": "message", "text": text}
    if user_id is not None:
        obj["userId"] = user_id
    if msg_id is not None:
        obj["id"] = msg_id
    if stream is not None:
        obj["stream"] = stream
    if trace is not None:
        obj["trace"] = trace.to_wire()
    return json.dumps(obj, separators=(",", ":"))


def _response(user_id: str | None, msg_id: str | None, trace: Trace | None, **fields: Any) -> str:
    obj: dict[str, Any] = {"type": "response", **fields}
    if user_id is not None:
        obj["userId"] = user_id
    if msg_id is not None:
        obj["id"] = msg_id
    if trace is not None:
        obj["trace"] = trace.to_wire()
    return json.dumps(obj, separators=(",", ":"))


def response_frame(
    text: str, *, user_id: str | None = None, msg_id: str | None = None, trace: Trace | None = None
) -> str:
    return _response(user_id, msg_id, trace, text=text)


def error_frame(
    error: str,
    *,
    user_id: str | None = None,
    msg_id: str | None = None,
    trace: Trace | None = None,
) -> str:
    return _response(user_id, msg_id, trace, error=error)


def stream_start_frame(*, user_id: str | None = None, msg_id: str | None = None) -> str:
    return _response(user_id, msg_id, None, streaming=True)


def chunk_frame(text: str, *, user_id: str | None = None, msg_id: str | None = None) -> str:
    return _response(user_id, msg_id, None, chunk=True, text=text)


def complete_frame(
    text: str, *, user_id: str | None = None, msg_id: str | None = None, trace: Trace | None = None
) -> str:
    return _response(user_id, msg_id, trace, complete=True, text=text)


def replay_frame(
    text: str, *, user_id: str | None = None, msg_id: str | None = None, trace: Trace | None = None
) -> str:
    """A stored reply sent again to a client that resumed: a whole reply with ``"replay":
    true`` (never streamed), so a client that ignores the flag takes it as the reply."""
    return _response(user_id, msg_id, trace, text=text, replay=True)


def resumed_frame(
    after: str | None,
    *,
    replayed: int = 0,
    pending: dict[str, str] | None = None,
    error: str | None = None,
) -> str:
    """The end of a resume: ``replayed`` replies were sent before it, ``pending`` says what
    became of each id the client asked about (``done``: replayed; ``started``: being answered
    or cut off, resend it; ``new``: never received, resend it). With ``error`` (an unknown
    ``after``), nothing was replayed."""
    obj: dict[str, Any] = {"type": "resumed", "after": after}
    if error is not None:
        obj["error"] = error
    else:
        obj["replayed"] = replayed
        obj["pending"] = pending or {}
    return json.dumps(obj, separators=(",", ":"))


def resume_frame(
    after: str | None, pending: list[str] | tuple[str, ...] = (), *, user_id: str | None = None
) -> str:
    obj: dict[str, Any] = {"type": "resume", "after": after, "pending": list(pending)}
    if user_id is not None:
        obj["userId"] = user_id
    return json.dumps(obj, separators=(",", ":"))


class ServerFrameKind(Enum):
    RESPONSE = "response"  # a whole, non-streamed reply
    START = "start"
    CHUNK = "chunk"
    COMPLETE = "complete"
    ERROR = "error"
    RESUMED = "resumed"  # the end of a resume (``resumed_frame``)
    OTHER = "other"  # a frame a client should ignore (e.g. cf_agent_* protocol frames)


@dataclass
class ServerFrame:
    kind: ServerFrameKind
    text: str = ""
    error: str | None = None
    user_id: str | None = None
    id: str | None = None
    trace: Trace | None = None
    replay: bool = False  # a stored reply sent again on resume
    pending: dict[str, str] | None = None  # RESUMED: the state of each id asked about


def parse_server_frame(data: str | bytes) -> ServerFrame:
    """Classify a frame from a gateway (ours or a deployed original). Never raises on shape."""
    if isinstance(data, bytes | bytearray):
        return ServerFrame(ServerFrameKind.OTHER)
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        return ServerFrame(ServerFrameKind.OTHER)
    if isinstance(obj, dict) and obj.get("type") == "resumed":
        return _resumed(obj)
    if not isinstance(obj, dict) or obj.get("type") != "response":
        return ServerFrame(ServerFrameKind.OTHER)
    try:
        trace = Trace.from_wire_or_none(obj.get("trace"))
    except TraceError:
        trace = None
    raw_text, raw_user, raw_id = obj.get("text"), obj.get("userId"), obj.get("id")
    frame = ServerFrame(
        ServerFrameKind.RESPONSE,
        text=raw_text if isinstance(raw_text, str) else "",
        user_id=raw_user if isinstance(raw_user, str) else None,
        id=raw_id if isinstance(raw_id, str) else None,
        trace=trace,
        replay=obj.get("replay") is True,
    )
    if obj.get("error") is not None:
        frame.kind, frame.error = ServerFrameKind.ERROR, str(obj["error"])
    elif obj.get("streaming"):
        frame.kind = ServerFrameKind.START
    elif obj.get("chunk"):
        frame.kind = ServerFrameKind.CHUNK
    elif obj.get("complete"):
        frame.kind = ServerFrameKind.COMPLETE
    return frame


def _resumed(obj: dict[str, Any]) -> ServerFrame:
    after = obj.get("after") if isinstance(obj.get("after"), str) else None
    if obj.get("error") is not None:
        return ServerFrame(ServerFrameKind.RESUMED, error=str(obj["error"]), id=after)
    raw = obj.get("pending")
    pending = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return ServerFrame(ServerFrameKind.RESUMED, id=after, pending=pending)
