"""Standard Webhooks signing, checked both ways against the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks

from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import (
    WebhookVerificationError,
    sign,
    signed_headers,
    verify,
    webhook_event,
)

SECRET = "whsec_" + base64.b64encode(b"a-test-webhook-secret-of-32-bytes!").decode()
BODY = b'{"type":"message","room":"room:a"}'


def test_our_headers_verify_with_the_standardwebhooks_package() -> None:
    headers = signed_headers(SECRET, BODY)
    standardwebhooks.Webhook(SECRET).verify(BODY, headers)


def test_the_packages_signature_verifies_with_ours() -> None:
    now = int(time.time())
    sig = standardwebhooks.Webhook(SECRET).sign(
        "msg_1", datetime.fromtimestamp(now, tz=UTC), BODY.decode()
    )
    assert sig == sign(SECRET, "msg_1", now, BODY)
    verify(
        SECRET,
        {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": sig},
        BODY,
    )


def test_any_of_several_space_separated_signatures_may_match() -> None:
    h = signed_headers(SECRET, BODY, msg_id="m", now_s=1000)
    h["webhook-signature"] = "v1,AAAA v2,zzz " + h["webhook-signature"]
    verify(SECRET, h, BODY, now_s=1000)


def test_header_names_are_case_insensitive() -> None:
    h = {k.upper(): v for k, v in signed_headers(SECRET, BODY, now_s=1000).items()}
    verify(SECRET, h, BODY, now_s=1000)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (dict(h, **{"webhook-signature": "v1,AAAA"}), b), "no matching"),
        (lambda h, b: (h, b + b" "), "no matching"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing"),
        (lambda h, b: (dict(h, **{"webhook-timestamp": "soon"}), b), "not an integer"),
        (lambda h, b: (dict(h, **{"webhook-timestamp": "600"}), b), "too old"),
        (lambda h, b: (dict(h, **{"webhook-timestamp": "1400"}), b), "future"),
        # undecodable header bytes reach us as lone surrogates; they once raised
        # UnicodeEncodeError (a 500 from the worker) instead of failing verification
        (lambda h, b: (dict(h, **{"webhook-id": "m\udcff"}), b), "no matching"),
        (lambda h, b: (dict(h, **{"webhook-signature": "v1,\udcff"}), b), "no matching"),
    ],
)
def test_tampered_missing_or_stale_webhooks_are_refused_with_a_reason(
    change: Any, reason: Any
) -> None:
    headers, body = change(signed_headers(SECRET, BODY, msg_id="m", now_s=1000), BODY)
    with pytest.raises(WebhookVerificationError) as info:
        verify(SECRET, headers, body, now_s=1000)
    assert reason in info.value.reason


def test_the_package_refuses_a_body_we_signed_with_another_secret() -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret-xx").decode()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(BODY, signed_headers(other, BODY))


def test_message_event_has_the_designs_shape_with_the_trace() -> None:
    trace = Trace.start("m1")
    trace.stamp("client.send", "client", t_ns=1)
    ev = webhook_event(
        "message",
        room="travel:u1",
        user_id="u1",
        text="hi",
        msg_id="m1",
        trace=trace,
        timestamp_ms=5,
    )
    assert ev == {
        "type": "message",
        "room": "travel:u1",
        "userId": "u1",
        "message": {
            "text": "hi",
            "id": "m1",
            "trace": {"id": "m1", "stamps": [["client.send", 1, "client"]]},
        },
        "timestamp": 5,
    }
    with pytest.raises(ValueError):
        webhook_event("other", room="r", user_id="u")
