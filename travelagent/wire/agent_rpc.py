"""The agent host's RPC, both ends; pure code, no I/O.

``POST /agents/TravelAgent/{name}/rpc`` with ``{"text", "trace"?, "stream"?, "id"?}`` (``id``:
the message id the turn is keyed by; the trace's id when absent):

- not streamed: ``{"text", "trace"}`` (plus ``"events"`` when the agent announced itinerary
  changes since its last reply); bad input is a 400 with ``{"error": reason}`` and a failed turn
  a 500 with ``{"error", "trace"}``.
- streamed: an NDJSON body of ``{"chunk": ...}`` lines ending with
  ``{"done": true, "text", "trace"}``, or ``{"error", "trace"}`` if the turn failed after the
  body started; the final line may carry ``"events"`` too.

The host (``agent/host.py``) reads requests and writes replies with this module; the worker's
``RemoteAgentDirectory`` (``agent/remote.py``) writes requests and reads replies with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from travelagent.wire import ndjson
from travelagent.wire.trace import Trace, TraceError

AGENT_ROUTE = "/agents/TravelAgent/{name}"
CONTENT_TYPE_NDJSON = "application/x-ndjson"


class RpcError(ValueError):
    """A request or reply that does not follow the protocol; ``str(err)`` says why."""


@dataclass(frozen=True)
class RpcRequest:
    text: str
    stream: bool
    trace: Trace | None
    msg_id: str | None = None


def request_body(
    text: str, trace: Trace | None, stream: bool, msg_id: str | None = None
) -> dict[str, Any]:
    body = {"text": text, "stream": stream, "trace": trace.to_wire() if trace else None}
    if msg_id is not None:
        body["id"] = msg_id
    return body


def parse_request(body: Any) -> RpcRequest:
    """A received request body (already JSON-decoded); raise RpcError with the 400 reason."""
    if not isinstance(body, dict):
        raise RpcError("body must be a JSON object")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RpcError("'text' must be a non-empty string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RpcError("'stream' must be true or false")
    try:
        trace = Trace.from_wire_or_none(body.get("trace"))
    except TraceError as err:
        raise RpcError(f"bad trace: {err}") from None
    msg_id = body.get("id")
    if msg_id is not None and (not isinstance(msg_id, str) or not msg_id):
        raise RpcError("'id' must be a non-empty string")
    return RpcRequest(text, stream, trace, msg_id)


def _wire(trace: Trace | None) -> dict[str, Any] | None:
    return trace.to_wire() if trace else None


def _with_events(obj: dict[str, Any], events: list[Any]) -> dict[str, Any]:
    if events:
        obj["events"] = events
    return obj


def reply_body(text: str, trace: Trace | None, events: list[Any]) -> dict[str, Any]:
    return _with_events({"text": text, "trace": _wire(trace)}, events)


def failure_body(error: str, trace: Trace | None) -> dict[str, Any]:
    return {"error": error, "trace": _wire(trace)}


def chunk_line(chunk: str) -> bytes:
    return ndjson.line_bytes({"chunk": chunk})


def done_line(text: str, trace: Trace | None, events: list[Any]) -> bytes:
    return ndjson.line_bytes(
        _with_events({"done": True, "text": text, "trace": _wire(trace)}, events)
    )


def error_line(error: str, trace: Trace | None, events: list[Any]) -> bytes:
    return ndjson.line_bytes(_with_events({"error": error, "trace": _wire(trace)}, events))


# --- the caller's side ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    text: str


@dataclass(frozen=True)
class Done:
    """The last line of a good stream, or a whole reply: ``body`` holds trace and events."""

    text: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    error: str
    body: dict[str, Any]


StreamItem = Chunk | Done | Failed | None  # None: a line to pass over


def parse_stream_line(line: str) -> StreamItem:
    """One line of a streamed reply; raise RpcError for a line that is not a JSON object."""
    try:
        item = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        item = None
    if not isinstance(item, dict):
        raise RpcError("agent host sent a malformed stream line")
    if "chunk" in item:
        return Chunk(str(item["chunk"]))
    if item.get("done"):
        return Done(str(item.get("text", "")), item)
    if "error" in item:
        return Failed(str(item["error"]), item)
    return None


def parse_reply(data: Any) -> Done:
    """A whole (not streamed) reply, JSON-decoded; raise RpcError if it is malformed."""
    try:
        return Done(str(data["text"]), data)
    except (KeyError, TypeError):
        raise RpcError("agent host sent a malformed reply") from None


def error_reason(body: bytes) -> str:
    """What an error reply says: its ``error``, else the start of the body."""
    try:
        reason = json.loads(body).get("error") or body[:200].decode(errors="replace")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError, RecursionError):
        reason = body[:200].decode(errors="replace")
    return str(reason)


def returned_trace(body: Mapping[str, Any]) -> Trace | None:
    """The trace a reply carried back (None if it carried none); raise RpcError if malformed."""
    wire = body.get("trace")
    if wire is None:
        return None
    try:
        return Trace.from_wire(wire)
    except TraceError as err:
        raise RpcError(f"agent host returned a bad trace: {err}") from None


# --- resume: the replies a reconnecting gateway client missed -------------------------------------
# ``POST /agents/TravelAgent/{name}/replies`` with ``{"after": <msg id> | null, "ids": [...]}``;
# answers ``{"replies": [{"id", "seq", "reply"}], "pending": {<id>: <state>}}``, or 404 with
# ``{"error"}`` when the agent keeps no turn ``after``.
REPLIES_ROUTE = AGENT_ROUTE + "/replies"
MAX_RESUME_IDS = 256


def replies_request_body(after: str | None, ids: Sequence[str]) -> dict[str, Any]:
    return {"after": after, "ids": list(ids)}


def _msg_ids(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_RESUME_IDS:
        raise RpcError(f"'{what}' must be a list of at most {MAX_RESUME_IDS} message ids")
    if not all(isinstance(v, str) and v for v in value):
        raise RpcError(f"'{what}' must hold non-empty strings")
    return list(value)


def parse_replies_request(body: Any) -> tuple[str | None, list[str]]:
    """(after, ids) of a replies request; raise RpcError with the 400 reason."""
    if not isinstance(body, dict):
        raise RpcError("body must be a JSON object")
    after = body.get("after")
    if after is not None and (not isinstance(after, str) or not after):
        raise RpcError("'after' must be a non-empty string or null")
    return after, _msg_ids(body.get("ids", []), "ids")


def replies_body(
    replies: Sequence[tuple[str, int, str | None]], pending: Mapping[str, str]
) -> dict[str, Any]:
    """The answer: ``replies`` as (msg id, seq, reply), ``pending`` as id -> turn state."""
    return {
        "replies": [{"id": m, "seq": q, "reply": r} for m, q, r in replies],
        "pending": dict(pending),
    }


def parse_replies(data: Any) -> tuple[list[tuple[str, int, str]], dict[str, str]]:
    """(replies as (msg id, seq, reply), pending id -> state) of a replies answer,
    JSON-decoded; raise RpcError if it is malformed."""
    try:
        replies = [(str(r["id"]), int(r["seq"]), str(r["reply"])) for r in data["replies"]]
        pending = data["pending"]
        if not isinstance(pending, dict) or not all(
            s in ("new", "started", "done") for s in pending.values()
        ):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise RpcError("agent host sent malformed replies") from None
    return replies, {str(k): str(v) for k, v in pending.items()}
