"""Properties of the webhook intake: every request becomes one decision; no id runs twice."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, TEXT

from travelagent.wire.webhooks import encode_event, signed_headers
from travelagent.worker.intake import (
    Deduplicator,
    Redeliver,
    Respond,
    StartTurn,
    WebhookIntake,
)

SECRET = "whsec_" + base64.b64encode(b"intake-property-secret-32-bytes!").decode()
API_KEY = "intake-key"
NOW = 1_764_215_000.0


def intake() -> WebhookIntake[str]:
    return WebhookIntake(
        webhook_secret=lambda: SECRET,
        api_key=lambda: API_KEY,
        tolerance_s=300,
        ack_first=False,
        default_stream=True,
        process="worker",
        dedup=Deduplicator(clock_s=lambda: 0.0),
        now_s=lambda: NOW,
    )


def events() -> st.SearchStrategy[dict[str, Any]]:
    """Events near the design's shape: each part either valid or arbitrary."""
    message = st.one_of(
        st.fixed_dictionaries(
            {"text": st.one_of(st.text(max_size=20), JSON_VALUES)},
            optional={"id": JSON_VALUES, "trace": JSON_VALUES, "stream": JSON_VALUES},
        ),
        JSON_VALUES,
    )
    return st.fixed_dictionaries(
        {
            "type": st.one_of(st.sampled_from(["message", "presence", "connection"]), TEXT),
            "room": st.one_of(st.sampled_from(["travel:u1", "room:lobby"]), JSON_VALUES),
            "message": message,
        },
        optional={
            "userId": st.one_of(st.just("u1"), JSON_VALUES),
            "timestamp": JSON_VALUES,
            "roomGranted": st.one_of(st.just(True), JSON_VALUES),
        },
    )


def check(decision: Any) -> None:
    if isinstance(decision, Respond):
        assert decision.status in (200, 400, 401, 403)
        if decision.status != 200:
            assert decision.body["error"]
    elif isinstance(decision, StartTurn):
        order = decision.order
        assert order.text.strip() and order.msg_id and order.user_id
        # A turn answers only where its user belongs: its own channel or a granted room.
        channel, user = order.channel, order.user_id
        assert channel in (f"travel:{user}", user) or channel.startswith("room:")
        assert order.trace.get("worker.recv") == 5 or order.trace.room == 0
    else:
        assert isinstance(decision, Redeliver)


@given(events(), st.text(min_size=1, max_size=20))
def test_a_signed_event_is_one_decision_and_its_retry_never_starts_a_second_turn(
    event: dict[str, Any], webhook_id: str
) -> None:
    body = encode_event(event)
    headers = signed_headers(SECRET, body, msg_id=webhook_id, now_s=int(NOW))
    it = intake()
    first = it.receive(headers, body, t_recv_ns=5)
    check(first)
    if isinstance(first, StartTurn):
        it.dedup.remember(webhook_id, "turn")
    again = it.receive(headers, body, t_recv_ns=6)
    assert not isinstance(again, StartTurn)
    if isinstance(first, StartTurn):
        assert again == Redeliver("turn")


@given(
    st.dictionaries(st.sampled_from(["webhook-id", "webhook-signature", "X-API-Key", "x"]), TEXT),
    st.one_of(st.binary(max_size=100), JSON_OBJECTS.map(lambda v: json.dumps(v).encode())),
)
def test_any_request_is_one_decision_never_an_exception(
    headers: dict[str, str], body: bytes
) -> None:
    check(intake().receive(headers, body, t_recv_ns=5))


@given(
    st.fixed_dictionaries(
        {"channel": st.one_of(st.just("travel:u1"), JSON_VALUES)},
        optional={
            "user": st.one_of(st.just("u1"), JSON_VALUES),
            "data": st.one_of(
                st.fixed_dictionaries(
                    {"type": st.just("message"), "text": st.one_of(st.text(), JSON_VALUES)},
                    optional={"id": JSON_VALUES, "trace": JSON_VALUES, "userId": JSON_VALUES},
                ),
                JSON_VALUES,
            ),
        },
    )
)
def test_any_publish_proxy_request_is_one_decision(req: dict[str, Any]) -> None:
    decision = intake().receive({"X-API-Key": API_KEY}, json.dumps(req).encode(), t_recv_ns=5)
    check(decision)
    if isinstance(decision, StartTurn):
        assert decision.webhook_id is None and decision.ack == {"result": {}}
