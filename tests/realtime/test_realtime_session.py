"""The Centrifugo client session with no sockets: text in with a time, messages and actions out.

The socket tests (test_realtime_server.py, test_centrifugo_sdk.py) stay as the end-to-end layer.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.history import History
from travelagent.realtime.hub import Hub
from travelagent.realtime.session import (
    ArmExpiry,
    ClientSession,
    CloseConnection,
    SendWebhook,
    StartPinger,
)
from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import Trace

SECRET = "test-secret-that-is-long-enough-for-hs256"
NOW_S = 1_800_000_000.0


def token(user: str = "u1", **claims: Any) -> str:
    return jwt.encode({"sub": user, "exp": int(NOW_S) + 3600, **claims}, SECRET, algorithm="HS256")


def make(
    hub: Hub | None = None, *, webhooks: bool = True, room: int = 100, **config: Any
) -> ClientSession:
    cfg = RealtimeConfig(jwt_secret=SECRET, **config)
    return ClientSession(
        hub or Hub(history=History()),
        cfg,
        webhook_room=(lambda pending: pending < room) if webhooks else None,
        clock_s=lambda: NOW_S,
        client_id="c-1",
    )


def feed(s: ClientSession, *commands: dict[str, Any], t_ns: int = 1) -> list[dict[str, Any]]:
    """Send commands in one frame; return the messages the session queued, decoded."""
    s.receive_text("\n".join(json.dumps(c) for c in commands), t_ns)
    return [json.loads(m) for m in s.data_to_send()]


def connected(hub: Hub | None = None, **kw: Any) -> ClientSession:
    s = make(hub, **kw)
    [reply] = feed(s, {"id": 1, "connect": {"token": token()}})
    assert reply["connect"]["client"] == "c-1"
    s.actions_to_do()
    return s


def closes(s: ClientSession) -> list[CloseConnection]:
    return [a for a in s.actions_to_do() if isinstance(a, CloseConnection)]


def test_connect_with_a_valid_token_replies_and_asks_for_the_ping_timer() -> None:
    s = make(ping_interval_s=25.0)
    [reply] = feed(s, {"id": 1, "connect": {"token": token(exp=int(NOW_S) + 60)}})
    assert reply == {
        "id": 1,
        "connect": {"client": "c-1", "version": reply["connect"]["version"], "ping": 25,
                    "pong": True},
    }  # fmt: skip
    actions = s.actions_to_do()
    assert StartPinger(25.0) in actions and ArmExpiry(60.0) in actions
    assert s.user == "u1" and s.hub.counters.connections == 1


def test_a_command_before_connect_asks_to_close_with_bad_request() -> None:
    s = make()
    assert feed(s, {"id": 1, "subscribe": {"channel": "travel:u1"}}) == []
    assert closes(s) == [CloseConnection(cf.DISCONNECT_BAD_REQUEST, "connect first")]
    assert s.closing


def test_an_invalid_token_asks_to_close_with_invalid_token() -> None:
    s = make()
    feed(s, {"id": 1, "connect": {"token": "not-a-jwt"}})
    [close] = closes(s)
    assert close.code == cf.DISCONNECT_INVALID_TOKEN and close.reason.startswith("invalid token")


def test_an_expired_token_gets_error_109_and_the_session_stays_open() -> None:
    s = make()
    expired = token(exp=int(NOW_S) - 3600)
    [reply] = feed(s, {"id": 1, "connect": {"token": expired}})
    assert reply["error"]["code"] == cf.ERROR_TOKEN_EXPIRED and not s.closing


def test_a_second_connect_is_answered_with_bad_request() -> None:
    s = connected()
    [reply] = feed(s, {"id": 2, "connect": {"token": token()}})
    assert reply["error"]["code"] == cf.ERROR_BAD_REQUEST


def test_subscribe_to_own_channel_is_positioned_and_foreign_channel_is_denied() -> None:
    s = connected()
    ok, denied = feed(
        s,
        {"id": 2, "subscribe": {"channel": "travel:u1"}},
        {"id": 3, "subscribe": {"channel": "travel:u2"}},
    )
    assert ok["id"] == 2 and ok["subscribe"]["recoverable"] is True
    assert ok["subscribe"]["offset"] == 0 and ok["subscribe"]["epoch"]
    assert denied == {"id": 3, "error": {"code": cf.ERROR_PERMISSION_DENIED,
                                         "message": "permission denied"}}  # fmt: skip
    [again] = feed(s, {"id": 4, "subscribe": {"channel": "travel:u1"}})
    assert again["error"]["code"] == cf.ERROR_ALREADY_SUBSCRIBED


def test_publish_fans_out_to_subscribers_and_asks_for_one_webhook_with_the_trace() -> None:
    hub = Hub(history=History())
    s = connected(hub)
    feed(s, {"id": 2, "subscribe": {"channel": "travel:u1"}})
    tr = Trace.start("m1")
    tr.stamp("client.send", "client", t_ns=5)
    data = {"type": "message", "text": "hi", "trace": tr.to_wire()}
    # The hub fans out within the publish, so the push is queued before the reply.
    push, reply = feed(s, {"id": 3, "publish": {"channel": "travel:u1", "data": data}}, t_ns=7)
    assert reply == {"id": 3, "publish": {}}
    pub = push["push"]["pub"]
    assert pub["offset"] == 1 and pub["info"] == {"client": "c-1", "user": "u1"}
    assert [s[0] for s in pub["data"]["trace"]["stamps"]] == ["client.send", "realtime.recv"]
    [webhook] = s.actions_to_do()
    assert isinstance(webhook, SendWebhook)
    assert webhook.event["type"] == "message" and webhook.event["room"] == "travel:u1"
    assert webhook.event["message"]["text"] == "hi" and webhook.event["message"]["id"] == "m1"
    assert webhook.event["timestamp"] == int(NOW_S * 1000)
    assert webhook.trace is not None and webhook.trace.get("realtime.recv") == 7


def test_publish_is_refused_with_106_when_the_webhook_queue_has_no_room() -> None:
    s = connected(room=1)
    first, second = feed(
        s,
        {"id": 2, "publish": {"channel": "travel:u1", "data": {"text": "a"}}},
        {"id": 3, "publish": {"channel": "travel:u1", "data": {"text": "b"}}},
    )
    assert first == {"id": 2, "publish": {}}
    assert second["error"]["code"] == cf.ERROR_LIMIT_EXCEEDED
    assert len(s.actions_to_do()) == 1


def test_publish_without_webhooks_asks_for_nothing() -> None:
    s = connected(webhooks=False)
    [reply] = feed(s, {"id": 2, "publish": {"channel": "travel:u1", "data": {"text": "a"}}})
    assert reply == {"id": 2, "publish": {}} and s.actions_to_do() == []


def test_joining_a_room_pushes_join_to_others_and_asks_for_a_presence_webhook() -> None:
    hub = Hub(history=History())
    a, b = connected(hub), connected(hub)
    b.client_id = "c-2"
    feed(a, {"id": 2, "subscribe": {"channel": "room:lobby"}})
    a.actions_to_do()
    feed(b, {"id": 2, "subscribe": {"channel": "room:lobby"}})
    [join] = [json.loads(m) for m in a.data_to_send()]
    info = {"client": "c-2", "user": "u1"}
    assert join == {"push": {"channel": "room:lobby", "join": {"info": info}}}
    [webhook] = b.actions_to_do()
    assert isinstance(webhook, SendWebhook) and webhook.event["type"] == "presence"
    b.connection_lost()
    [leave] = [json.loads(m) for m in a.data_to_send()]
    assert "leave" in leave["push"] and hub.counters.connections == 1
    [left] = b.actions_to_do()
    assert isinstance(left, SendWebhook) and left.event["message"]["action"] == "leave"


def test_presence_and_history_answer_from_the_hub() -> None:
    s = connected()
    feed(s, {"id": 2, "subscribe": {"channel": "travel:u1"}})
    feed(s, {"id": 3, "publish": {"channel": "travel:u1", "data": {"text": "a"}}})
    presence, stats, history = feed(
        s,
        {"id": 4, "presence": {"channel": "travel:u1"}},
        {"id": 5, "presence_stats": {"channel": "travel:u1"}},
        {"id": 6, "history": {"channel": "travel:u1", "limit": 10}},
    )
    assert presence["presence"]["presence"] == {"c-1": {"client": "c-1", "user": "u1"}}
    assert stats["presence_stats"] == {"num_clients": 1, "num_users": 1}
    assert [p["data"] for p in history["history"]["publications"]] == [{"text": "a"}]


def test_a_bad_command_gets_its_error_and_the_rest_of_the_frame_is_served() -> None:
    s = connected()
    bad, good = feed(s, {"id": 2, "rpc": {}}, {"id": 3, "presence_stats": {"channel": "travel:u1"}})
    assert bad["error"]["code"] == cf.ERROR_METHOD_NOT_FOUND
    assert good["id"] == 3 and not s.closing


@pytest.mark.parametrize("frame", ["{not json", '{"subscribe": {"channel": "x"}}'])
def test_unreadable_lines_and_commands_without_id_ask_to_close(frame: str) -> None:
    s = connected()
    s.receive_text(frame, 1)
    [close] = closes(s)
    assert close.code == cf.DISCONNECT_BAD_REQUEST


def test_a_bug_in_a_handler_answers_100_and_the_session_carries_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: ClientSession, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        raise RuntimeError("bug")

    monkeypatch.setitem(ClientSession.COMMANDS, "presence", broken)
    s = connected()
    [reply] = feed(s, {"id": 2, "presence": {"channel": "travel:u1"}})
    assert reply["error"] == {"code": 100, "message": "internal server error", "temporary": True}
    assert not s.closing


def test_ping_then_no_pong_by_the_next_ping_asks_to_close_3012() -> None:
    s = connected()
    s.ping_due()
    assert s.data_to_send() == [cf.PING]
    s.receive_text("{}", 1)  # pong
    s.ping_due()
    assert s.data_to_send() == [cf.PING] and not s.closing
    s.ping_due()
    assert closes(s) == [CloseConnection(cf.DISCONNECT_NO_PONG, "no pong")]


def test_a_slow_consumer_is_closed_once_its_queue_is_full_and_nothing_more_is_queued() -> None:
    s = connected(max_queued_messages=2)
    for _ in range(3):
        s.send("x")
    assert closes(s) == [CloseConnection(cf.DISCONNECT_SLOW, "slow")]
    s.send("y")
    assert s.data_to_send() == ["x", "x"] and s.hub.counters.slow_disconnects == 1


def test_token_expiry_asks_to_close_3005() -> None:
    s = connected()
    s.token_expired()
    assert closes(s) == [CloseConnection(cf.DISCONNECT_EXPIRED, "expired")]


def test_the_command_table_covers_every_supported_method_but_connect() -> None:
    assert set(ClientSession.COMMANDS) == cf.SUPPORTED_METHODS - {"connect"}


def test_a_session_not_connected_by_the_deadline_is_closed_as_stale() -> None:
    s = make()
    s.connect_deadline_passed()
    [close] = closes(s)
    assert close.code == cf.DISCONNECT_STALE and s.hub.counters.connect_timeouts == 1


def test_the_connect_deadline_does_nothing_to_a_connected_session() -> None:
    s = connected()
    s.connect_deadline_passed()
    assert closes(s) == [] and not s.closing


def test_a_queue_over_its_byte_bound_is_closed_as_slow() -> None:
    s = connected(max_queued_bytes=1000)
    s.send("x" * 600)
    s.send("y" * 600)
    [close] = closes(s)
    assert close.code == cf.DISCONNECT_SLOW and s.hub.counters.slow_disconnects == 1


def test_a_room_message_event_says_the_room_was_granted_and_an_own_channel_event_does_not() -> None:
    s = connected()  # no rooms configured or claimed: every room is granted
    feed(s, {"id": 2, "publish": {"channel": "room:lobby", "data": {"text": "hi"}}})
    feed(s, {"id": 3, "publish": {"channel": "travel:u1", "data": {"text": "hi"}}})
    room, own = [a.event for a in s.actions_to_do() if isinstance(a, SendWebhook)]
    assert room["room"] == "room:lobby" and room["roomGranted"] is True
    assert own["room"] == "travel:u1" and "roomGranted" not in own
    # A room outside the grants is refused before any event exists.
    limited = connected(allowed_rooms=frozenset({"paris"}))
    [reply] = feed(limited, {"id": 2, "publish": {"channel": "room:lobby", "data": {"t": 1}}})
    assert reply["error"]["code"] == 103 and limited.actions_to_do() == []


def test_a_user_past_its_connection_cap_is_refused_at_connect_and_its_slot_given_back() -> None:
    from travelagent.limits import ConnectionLimiter

    hub, per_user = Hub(history=History()), ConnectionLimiter(1)
    sessions = [
        ClientSession(
            hub, RealtimeConfig(jwt_secret=SECRET), clock_s=lambda: NOW_S, per_user=per_user
        )
        for _ in range(2)
    ]
    feed(sessions[0], {"id": 1, "connect": {"token": token()}})
    assert feed(sessions[1], {"id": 1, "connect": {"token": token()}}) == []
    assert [c.code for c in closes(sessions[1])] == [3504]
    assert hub.counters.refused_per_user == 1
    sessions[1].connection_lost()  # the refused session held no slot: nothing to give back
    sessions[0].connection_lost()
    assert per_user.open == {}
