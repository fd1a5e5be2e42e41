"""Standard Webhooks signing and the realtime-to-worker webhook event; pure code, no I/O.

Signing (standardwebhooks.com): the signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``,
the key is the base64 part of a ``whsec_...`` secret, and ``webhook-signature`` holds one or more
space-separated ``v1,<base64 HMAC-SHA256>`` values (several during a key rotation).

Event body (design section 3): ``{"type":"message"|"presence"|"connection","room":<channel>,
"userId":...,"message":{"text":...,"id":...,"trace":...},"timestamp":<ms>}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from travelagent.wire import jsoncodec
from travelagent.wire.centrifugo import MAX_CHANNEL_CHARS
from travelagent.wire.gateway import valid_user_id
from travelagent.wire.trace import Trace

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

EVENT_TYPES = frozenset({"message", "presence", "connection"})


class WebhookVerificationError(ValueError):
    """A webhook failed verification; ``reason`` says why (fit for a 4xx body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (a bare base64 string is accepted too)."""
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for this message."""
    # surrogatepass: a received webhook-id may hold undecodable header bytes as lone surrogates
    signed = f"{msg_id}.{timestamp_s}.".encode("utf-8", "surrogatepass") + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


def signed_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, now_s: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers (plus content-type) for ``body``."""
    msg_id = msg_id or new_webhook_id()
    ts = int(time.time()) if now_s is None else now_s
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (lower case), whatever casing ``headers`` holds it in."""
    # HTTP headers are case-insensitive; a plain dict may hold any casing.
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                return v
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now_s: int | None = None,
) -> None:
    """Check a received webhook; raise WebhookVerificationError(reason) if it must be refused."""
    msg_id = header(headers, HEADER_ID)
    ts_text = header(headers, HEADER_TIMESTAMP)
    sig_text = header(headers, HEADER_SIGNATURE)
    if not msg_id or not ts_text or not sig_text:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    now = int(time.time()) if now_s is None else now_s
    if ts < now - tolerance_s:
        raise WebhookVerificationError("webhook-timestamp too old")
    if ts > now + tolerance_s:
        raise WebhookVerificationError("webhook-timestamp too far in the future")
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1].encode()
    for candidate in sig_text.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(
            value.encode("utf-8", "surrogatepass"), expected
        ):
            return
    raise WebhookVerificationError("no matching webhook signature")


def is_standard_webhook(headers: Mapping[str, str]) -> bool:
    """Whether a request carries Standard Webhooks headers; one to the webhook route without
    them is a Centrifugo publish-proxy request (``travelagent.wire.proxy``)."""
    return header(headers, HEADER_SIGNATURE) is not None or header(headers, HEADER_ID) is not None


def parse_event(body: bytes) -> dict[str, Any]:
    """A received event body; raise ValueError with a reason fit for a 400 body."""
    try:
        event = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("body is not valid JSON") from None
    if not isinstance(event, dict):
        raise ValueError("body must be a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:  # a list is not even hashable
        raise ValueError("'type' must be one of message, presence, connection")
    room = event.get("room")
    if not isinstance(room, str) or not room or len(room) > MAX_CHANNEL_CHARS:
        # the reply is published to this channel: a longer name would fail that publish (502)
        raise ValueError(f"'room' must be a channel name of 1-{MAX_CHANNEL_CHARS} characters")
    return event


def event_user(event: Mapping[str, Any]) -> str:
    """The event's userId; as the original, the room stands in for a missing one."""
    user = event.get("userId")
    if user is None:
        room = str(event["room"])
        user = room.split(":", 1)[1] if room.startswith("travel:") else room
    if not valid_user_id(user):
        raise ValueError("'userId' must be 1-128 printable characters, no '/'")
    return str(user)


# Set to true on a message event by the realtime service when it found the ``room:<name>``
# channel the message was published in among the user's grants; the worker answers in a shared
# room only on this word (the event is signed, so only the realtime service can say it).
ROOM_GRANTED: Final = "roomGranted"


def webhook_event(
    kind: str,
    *,
    room: str,
    user_id: str,
    text: str = "",
    msg_id: str | None = None,
    trace: Trace | None = None,
    timestamp_ms: int | None = None,
    extra_message: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The design's webhook event body as a dict."""
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {kind!r}")
    message: dict[str, Any] = {"text": text}
    if msg_id is not None:
        message["id"] = msg_id
    if trace is not None:
        message["trace"] = trace.to_wire()
    if extra_message:
        message.update(extra_message)
    return {
        "type": kind,
        "room": room,
        "userId": user_id,
        "message": message,
        "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
    }


def encode_event(event: Mapping[str, Any]) -> bytes:
    return jsoncodec.dumps_bytes(event)


# --- delivery: the retry schedule -------------------------------------------------------------
# Standard Webhooks' retry schedule: the delays before attempts 2, 3, ... (8 attempts in all).
STANDARD_RETRY_SCHEDULE_S: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
RETRYABLE_STATUSES: Final[frozenset[int]] = frozenset({408, 425, 429})


def next_delay_s(schedule_s: Sequence[float], attempts: int) -> float | None:
    """The wait before the next attempt after ``attempts`` failed ones; None: give up."""
    return schedule_s[attempts - 1] if attempts - 1 < len(schedule_s) else None


def retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES
