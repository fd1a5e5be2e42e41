"""The gateway wire format, as spoken by the original Worker; pure code, no I/O.

Client to worker: ``{"type":"message","text":...,"userId":...}``, optionally with ``"id"``,
``"trace"`` and ``"stream"`` (a per-message override of the worker's streaming default).

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

from travelagent.wire import jsoncodec
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


def parse_client_frame(
    data: str | bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> ClientMessage:
    """Decode one client frame or raise FrameError with a reason fit for an error frame."""
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
    kind = obj.get("type")
    if kind != "message":
        raise FrameError(f"unknown type {kind!r}; expected 'message'")
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
    return jsoncodec.dumps(obj)


def _response(user_id: str | None, msg_id: str | None, trace: Trace | None, **fields: Any) -> str:
    obj: dict[str, Any] = {"type": "response", **fields}
    if user_id is not None:
        obj["userId"] = user_id
    if msg_id is not None:
        obj["id"] = msg_id
    if trace is not None:
        obj["trace"] = trace.to_wire()
    return jsoncodec.dumps(obj)


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


class ServerFrameKind(Enum):
    RESPONSE = "response"  # a whole, non-streamed reply
    START = "start"
    CHUNK = "chunk"
    COMPLETE = "complete"
    ERROR = "error"
    OTHER = "other"  # a frame a client should ignore (e.g. cf_agent_* protocol frames)


@dataclass
class ServerFrame:
    kind: ServerFrameKind
    text: str = ""
    error: str | None = None
    user_id: str | None = None
    id: str | None = None
    trace: Trace | None = None


def parse_server_frame(data: str | bytes) -> ServerFrame:
    """Classify a frame from a gateway (ours or a deployed original). Never raises on shape."""
    if isinstance(data, bytes | bytearray):
        return ServerFrame(ServerFrameKind.OTHER)
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, RecursionError):
        return ServerFrame(ServerFrameKind.OTHER)
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
