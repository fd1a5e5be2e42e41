"""Properties of webhook signing and event bodies: sign then verify; one changed byte fails."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, TEXT, deep_nesting

from travelagent.wire import proxy
from travelagent.wire.webhooks import (
    WebhookVerificationError,
    event_user,
    is_standard_webhook,
    parse_event,
    sign,
    signed_headers,
    verify,
)

SECRETS = st.binary(min_size=1, max_size=64).map(lambda k: "whsec_" + base64.b64encode(k).decode())
WEBHOOK_IDS = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and " " not in s)
NOW = 1_764_215_000


@given(SECRETS, st.binary(max_size=200), WEBHOOK_IDS, st.integers(min_value=-300, max_value=300))
def test_what_we_sign_verifies_within_the_tolerance(
    secret: str, body: bytes, msg_id: str, skew_s: int
) -> None:
    headers = signed_headers(secret, body, msg_id=msg_id, now_s=NOW + skew_s)
    verify(secret, headers, body, now_s=NOW)


@given(SECRETS, st.binary(min_size=1, max_size=200), st.data())
def test_any_single_byte_change_to_the_body_fails(secret: str, body: bytes, data: Any) -> None:
    headers = signed_headers(secret, body, msg_id="msg_1", now_s=NOW)
    i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify(secret, headers, tampered, now_s=NOW)


@given(SECRETS, st.sampled_from(["webhook-id", "webhook-signature"]), st.data())
def test_any_single_character_change_to_the_signed_headers_fails(
    secret: str, name: str, data: Any
) -> None:
    headers = signed_headers(secret, b'{"type":"message"}', msg_id="msg_abc", now_s=NOW)
    value = headers[name]
    i = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
    new = data.draw(st.characters().filter(lambda c: c != value[i] and c != " "))
    headers[name] = value[:i] + new + value[i + 1 :]
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b'{"type":"message"}', now_s=NOW)


@given(SECRETS, st.integers().filter(lambda s: abs(s) > 300))
def test_a_timestamp_outside_the_tolerance_fails(secret: str, skew_s: int) -> None:
    headers = signed_headers(secret, b"{}", msg_id="msg_1", now_s=NOW + skew_s)
    with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
        verify(secret, headers, b"{}", now_s=NOW)


@given(
    SECRETS,
    st.dictionaries(
        st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]), TEXT
    ),
    st.binary(max_size=50),
)
def test_any_headers_verify_or_fail_with_a_reason(
    secret: str, headers: dict[str, str], body: bytes
) -> None:
    try:
        verify(secret, headers, body, now_s=NOW)
    except WebhookVerificationError as err:
        assert err.reason


def test_a_signature_made_by_another_secret_fails() -> None:
    key = "whsec_" + base64.b64encode(b"k" * 32).decode()
    other = "whsec_" + base64.b64encode(b"j" * 32).decode()
    headers = signed_headers(other, b"{}", msg_id="msg_1", now_s=NOW)
    assert headers["webhook-signature"] != sign(key, "msg_1", NOW, b"{}")
    with pytest.raises(WebhookVerificationError):
        verify(key, headers, b"{}", now_s=NOW)


def near_valid_events() -> st.SearchStrategy[dict[str, Any]]:
    base = {"type": "message", "room": "travel:u1", "userId": "u1", "message": {"text": "hi"}}
    keys = st.sampled_from(["type", "room", "userId", "message"])
    return st.tuples(keys, JSON_VALUES).map(lambda kv: {**base, kv[0]: kv[1]})


@given(
    st.one_of(
        st.binary(),
        deep_nesting().map(str.encode),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        near_valid_events().map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_body_is_an_event_or_a_reason(body: bytes) -> None:
    try:
        event = parse_event(body)
        user = event_user(event)
    except ValueError as err:
        assert str(err)
        return
    assert event["type"] in ("message", "presence", "connection")
    assert isinstance(user, str) and user


@given(st.one_of(st.binary(), JSON_OBJECTS.map(lambda v: json.dumps(v).encode())))
def test_any_publish_proxy_body_parses_or_gets_a_reason(body: bytes) -> None:
    try:
        req = proxy.parse_publish(body)
    except ValueError as err:
        assert str(err)
    else:
        assert isinstance(req.channel, str)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=20)))
def test_a_request_is_a_standard_webhook_exactly_when_it_has_id_or_signature(
    headers: dict[str, str],
) -> None:
    lower = {k.lower() for k in headers}
    want = bool(lower & {"webhook-id", "webhook-signature"})
    assert is_standard_webhook(headers) is want
