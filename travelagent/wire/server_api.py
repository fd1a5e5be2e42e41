"""Centrifugo's server API, both ends; pure code, no I/O.

Two transports carry the same methods (``publish``, ``broadcast``, ``presence``,
``presence_stats``, ``history``, ``info``), both authenticated by ``X-API-Key``:

- HTTP: ``POST /api/<method>`` with the params as the JSON body; the answer is
  ``{"result": {...}}`` or ``{"error": {"code", "message"}}``.
- The publisher socket (``GET /api/ws``): each text frame holds newline-separated commands
  ``{"id": <int>, "method": ..., "params": {...}}``; each gets ``{"id": .., "result": {..}}`` or
  ``{"id": .., "error": {"code": .., "message": ..}}``, several replies per frame when they are
  ready together.

The realtime service (``realtime/api.py``) serves both; the worker's publishers
(``worker/publish.py``) and ``client/publisher.py`` call them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from travelagent.wire import jsoncodec, ndjson, secret
from travelagent.wire.centrifugo import ERROR_BAD_REQUEST, reply_error

API_KEY_HEADER = "X-API-Key"
API_METHODS = ("publish", "broadcast", "presence", "presence_stats", "history", "info")
SOCKET_PATH = "/api/ws"


# --- authentication ----------------------------------------------------------------------------
def api_key_headers(api_key: str) -> dict[str, str]:
    return {API_KEY_HEADER: api_key}


def authorized(headers: Mapping[str, str], api_key: str) -> bool:
    """Whether ``headers`` carry ``api_key`` (``X-API-Key``, or ``Authorization: apikey ..``)."""
    key = headers.get(API_KEY_HEADER, "")
    auth = headers.get("Authorization", "")
    if not key and auth.lower().startswith("apikey "):
        key = auth[7:].strip()  # Centrifugo's older spelling
    return bool(key) and secret.matches(key, api_key)


# --- HTTP ----------------------------------------------------------------------------------------
def publish_params(
    channel: str, data: Any, *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """A publish's params; ``idempotency_key`` (Centrifugo's) makes a retry publish once."""
    params: dict[str, Any] = {"channel": channel, "data": data}
    if idempotency_key is not None:
        params["idempotency_key"] = idempotency_key
    return params


def reply_key(msg_id: str, kind: str, seq: int | None = None) -> str:
    """The idempotency key of one publication of an agent reply: its message id, its kind
    (``start``, ``chunk``, ``final``) and, for chunks, their order. Every retry of a
    publication carries the same key; whoever publishes a message's final (the worker's reply,
    the realtime service's dead-letter error) uses ``final``, so the channel holds one."""
    return f"{msg_id}:{kind}" if seq is None else f"{msg_id}:{kind}:{seq}"


def http_result(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"result": dict(result)}


def http_error(error: Mapping[str, Any]) -> dict[str, Any]:
    return {"error": dict(error)}


# --- the publisher socket ----------------------------------------------------------------------
def socket_url(url: str) -> str:
    """Accept the socket URL itself or the service's base URL (http(s):// or ws(s)://)."""
    if url.startswith("http"):
        url = "ws" + url[4:]
    if not url.rstrip("/").endswith(SOCKET_PATH):
        url = url.rstrip("/") + SOCKET_PATH
    return url


def socket_command(cmd_id: int, method: str, params: Mapping[str, Any]) -> str:
    """One command line for the publisher socket."""
    return jsoncodec.dumps({"id": cmd_id, "method": method, "params": params})


@dataclass(frozen=True)
class SocketCommand:
    id: int
    method: str
    params: Any  # the server checks it is an object, with the method


class SocketCommandError(ValueError):
    """A line the server cannot run; answered with ``reply`` (id 0 when there was none)."""

    def __init__(self, cmd_id: int, code: int, message: str) -> None:
        super().__init__(message)
        self.reply = socket_error(cmd_id, {"code": code, "message": message})


def parse_socket_command(line: str) -> SocketCommand:
    """Read one command line; raise SocketCommandError with the reply for a bad one."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise SocketCommandError(0, ERROR_BAD_REQUEST, "invalid JSON") from None
    if not isinstance(obj, dict):
        raise SocketCommandError(0, ERROR_BAD_REQUEST, "not an object")
    cmd_id = obj.get("id", 0)
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        cmd_id = 0
    method = obj.get("method")
    if not isinstance(method, str):
        raise SocketCommandError(cmd_id, ERROR_BAD_REQUEST, "bad request: method must be a string")
    return SocketCommand(cmd_id, method, obj.get("params", {}))


def socket_lines(text: str) -> list[str]:
    """The command lines of one publisher-socket frame."""
    return list(ndjson.lines(text))


def socket_result(cmd_id: int, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": cmd_id, "result": dict(result)}


def socket_error(cmd_id: int, error: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": cmd_id, "error": dict(error)}


def encode_replies(replies: list[dict[str, Any]]) -> str:
    return ndjson.join(replies)


@dataclass(frozen=True)
class SocketReply:
    id: int
    body: dict[str, Any]

    @property
    def error(self) -> tuple[int, str] | None:
        return reply_error(self.body)

    @property
    def result(self) -> dict[str, Any]:
        result = self.body.get("result", {})
        return result if isinstance(result, dict) else {}


def decode_socket_replies(text: str | bytes) -> list[SocketReply]:
    """The replies in one frame from the publisher socket."""
    replies = []
    for obj, _ in ndjson.objects(text):
        cmd_id = obj.get("id", 0)
        if isinstance(cmd_id, int) and not isinstance(cmd_id, bool):
            replies.append(SocketReply(cmd_id, obj))  # a reply without an int id matches no call
    return replies
