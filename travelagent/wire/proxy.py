"""Centrifugo's publish proxy, as the worker receives it; pure code, no I/O.

A real Centrifugo in front of the worker asks, for each client publication, whether to allow
it: a POST of ``{"client", "transport", "user", "channel", "data", ...}`` authenticated by
``X-API-Key``. The answer ``{"result": {}}`` lets the publication through; ``{"error": {...}}``
refuses it. It is told apart from a Standard Webhook by its headers
(``travelagent.wire.webhooks.is_standard_webhook``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from travelagent.wire import secret
from travelagent.wire.webhooks import header

API_KEY_HEADER = "x-api-key"
ERROR_BAD_REQUEST = 107


@dataclass(frozen=True)
class ProxyPublish:
    channel: str
    user: Any  # as sent; the worker checks it as a userId
    data: Any


def parse_publish(body: bytes) -> ProxyPublish:
    """The request's channel, user and data; raise ValueError with a reason for a 400 body."""
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("body is not valid JSON") from None
    if not isinstance(req, dict) or not isinstance(req.get("channel"), str):
        raise ValueError("publish proxy request needs 'channel' and 'data'")
    return ProxyPublish(channel=req["channel"], user=req.get("user"), data=req.get("data"))


def allow() -> dict[str, Any]:
    return {"result": {}}


def refuse(code: int = ERROR_BAD_REQUEST, message: str = "bad request") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def api_key_matches(headers: Mapping[str, str], api_key: str) -> bool:
    """Whether ``headers`` carry ``api_key``; constant-time, so the key cannot be guessed byte
    by byte from response times. An empty key matches nothing."""
    return secret.matches(api_key_of(headers) or "", api_key)


def api_key_of(headers: Mapping[str, str]) -> str | None:
    return header(headers, API_KEY_HEADER)
