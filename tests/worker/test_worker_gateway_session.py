"""The gateway socket's rules with no socket: frames in with a time, accept or refuse out."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from travelagent.wire.tokens import TokenPolicy
from travelagent.wire.trace import MAX_STAMPS, Trace
from travelagent.worker.gateway_session import (
    Accept,
    Admission,
    AuthError,
    GatewaySession,
    QueryError,
    Refuse,
    Resume,
)


def frame(text: str = "hi", **fields: Any) -> str:
    return json.dumps({"type": "message", "text": text, **fields})


def test_a_message_on_a_socket_bound_by_query_is_accepted_with_worker_recv_at_arrival() -> None:
    s = GatewaySession(user_id="u1", process="worker")
    d = s.receive_text(frame(id="m1"), 42)
    assert isinstance(d, Accept)
    assert (d.user_id, d.msg_id, d.text, d.stream) == ("u1", "m1", "hi", True)
    assert d.trace.id == "m1" and d.trace.stamps == [("worker.recv", 42, "worker")]
    assert d.join_room is None


def test_the_first_message_binds_an_unbound_socket_and_joins_the_query_room_once() -> None:
    s = GatewaySession(room="lobby")
    first = s.receive_text(frame(userId="u1"), 1)
    assert isinstance(first, Accept) and first.user_id == "u1" and first.join_room == "lobby"
    second = s.receive_text(frame(), 2)
    assert isinstance(second, Accept) and second.user_id == "u1" and second.join_room is None


def test_a_message_naming_another_user_is_refused_with_the_bound_user() -> None:
    s = GatewaySession(user_id="u1")
    d = s.receive_text(frame(userId="u2", id="m9"), 1)
    assert d == Refuse("this socket is bound to userId 'u1'", "u1", "m9")


def test_an_unbound_socket_refuses_a_message_without_a_user() -> None:
    d = GatewaySession().receive_text(frame(), 1)
    assert isinstance(d, Refuse) and d.reason.startswith("userId required")


def test_one_message_over_the_in_flight_cap_is_refused() -> None:
    s = GatewaySession(user_id="u1", max_inflight=2)
    assert isinstance(s.receive_text(frame(), 1, inflight=1), Accept)
    d = s.receive_text(frame(id="m3"), 1, inflight=2)
    assert d == Refuse("more than 2 messages in flight on this socket", "u1", "m3")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("{not json", "invalid JSON"), ('{"type":"message"}', "'text'"), ("x" * 100, "99-byte limit")],
)
def test_unreadable_frames_are_refused_with_the_codec_reason(text: str, reason: str) -> None:
    d = GatewaySession(user_id="u1", max_frame_bytes=99).receive_text(text, 1)
    assert isinstance(d, Refuse) and reason in d.reason and d.user_id == "u1"


def test_binary_frames_are_refused() -> None:
    assert GatewaySession(user_id="u1").receive_binary().reason.startswith("binary frames")


def test_the_message_says_whether_to_stream_else_the_socket_default() -> None:
    s = GatewaySession(user_id="u1", default_stream=False)
    a, b = s.receive_text(frame(), 1), s.receive_text(frame(stream=True), 1)
    assert isinstance(a, Accept) and isinstance(b, Accept)
    assert (a.stream, b.stream) == (False, True)


def test_a_client_trace_is_kept_and_a_full_one_is_accepted_unstamped() -> None:
    tr = Trace.start("m1")
    tr.stamp("client.send", "client", t_ns=1)
    d = GatewaySession(user_id="u1").receive_text(frame(trace=tr.to_wire()), 5)
    assert isinstance(d, Accept) and [s[0] for s in d.trace.stamps] == [
        "client.send",
        "worker.recv",
    ]
    full = Trace.start("m2")
    for i in range(MAX_STAMPS):
        full.stamp("client.send", "client", t_ns=i)
    d = GatewaySession(user_id="u1").receive_text(frame(trace=full.to_wire()), 5)
    assert isinstance(d, Accept) and d.msg_id == "m2" and len(d.trace.stamps) == MAX_STAMPS


@pytest.mark.parametrize("query", [{"userId": "a/b"}, {"userId": "u1", "room": "x" * 200}])
def test_a_bad_query_is_refused_before_the_upgrade(query: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        GatewaySession.parse_query(query)


def test_a_query_with_user_and_room_joins_the_room_before_the_first_message() -> None:
    user, room = GatewaySession.parse_query({"userId": "u1", "room": "lobby"})
    s = GatewaySession(user_id=user, room=room)
    assert s.initial_room_binding() == ("u1", "lobby")
    assert GatewaySession(room="lobby").initial_room_binding() is None


# --- admission: who gets in before the upgrade ---------------------------------------------------
SECRET = "test-secret-that-is-long-enough-for-hs256"
NOW_S = 1_800_000_000.0
POLICY = TokenPolicy(secret=SECRET, max_lifetime_s=3600.0)


def token(user: str = "u1", **claims: Any) -> str:
    body: dict[str, Any] = {"sub": user, "exp": int(NOW_S) + 600, **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


def admit(query: dict[str, str], headers: dict[str, str] | None = None, *, open_: bool) -> Any:
    return GatewaySession.admit(query, headers or {}, policy=POLICY, open_access=open_, now_s=NOW_S)


@pytest.mark.parametrize("open_", [True, False])
def test_a_token_in_the_query_or_header_binds_the_socket_to_its_sub(open_: bool) -> None:
    assert admit({"token": token()}, open_=open_) == Admission("u1", None, authenticated=True)
    by_header = admit({}, {"Authorization": f"Bearer {token()}"}, open_=open_)
    assert by_header.user_id == "u1" and by_header.authenticated


def test_without_a_token_a_closed_gateway_refuses_and_an_open_one_takes_the_query() -> None:
    with pytest.raises(AuthError) as info:
        admit({"userId": "u1"}, open_=False)
    assert info.value.status == 401
    assert admit({"userId": "u1", "room": "r"}, open_=True) == Admission("u1", "r", False)


@pytest.mark.parametrize(
    "bad",
    [
        jwt.encode({"sub": "u1", "exp": int(NOW_S) + 60}, "x" * 40, algorithm="HS256"),
        token(exp=int(NOW_S) - 1),
        token(exp=32503680000),
        token(exp=None),
        token(rooms="lobby"),
        "garbage",
    ],
    ids=["forged", "expired", "year-3000", "no-exp", "rooms-not-a-list", "garbage"],
)
@pytest.mark.parametrize("open_", [True, False])
def test_a_bad_token_is_refused_even_on_an_open_gateway(bad: str, open_: bool) -> None:
    with pytest.raises(AuthError) as info:
        admit({"token": bad}, open_=open_)
    assert info.value.status == 401


def test_a_query_user_other_than_the_tokens_sub_is_forbidden() -> None:
    with pytest.raises(AuthError) as info:
        admit({"token": token("u1"), "userId": "u2"}, open_=True)
    assert info.value.status == 403
    assert admit({"token": token("u1"), "userId": "u1"}, open_=False).user_id == "u1"


def test_a_room_is_joined_only_as_the_token_grants() -> None:
    granted = admit({"token": token(rooms=["lobby"]), "room": "lobby"}, open_=False)
    assert granted.room == "lobby"
    with pytest.raises(AuthError) as info:
        admit({"token": token(rooms=["lobby"]), "room": "paris"}, open_=False)
    assert info.value.status == 403
    # No rooms claim: every room, as on the realtime service.
    assert admit({"token": token(), "room": "paris"}, open_=False).room == "paris"


def test_a_frame_claiming_another_user_on_a_token_bound_socket_is_refused() -> None:
    a = admit({"token": token("u1")}, open_=False)
    s = GatewaySession(user_id=a.user_id, room=a.room)
    d = s.receive_text(frame(userId="u2", id="m1"), 1)
    assert isinstance(d, Refuse) and d.user_id == "u1" and "bound to userId" in d.reason


def test_a_resume_binds_like_a_message_and_never_to_another_user() -> None:
    session = GatewaySession(room="lobby")
    out = session.receive_text('{"type":"resume","after":"m1","userId":"u1"}', 1)
    assert out == Resume("u1", "m1", (), "lobby")
    other = session.receive_text('{"type":"resume","after":"m1","userId":"u2"}', 2)
    assert isinstance(other, Refuse) and "bound to userId 'u1'" in other.reason
    unbound = GatewaySession().receive_text('{"type":"resume","after":"m1"}', 3)
    assert isinstance(unbound, Refuse) and "userId required" in unbound.reason


def test_resume_after_in_the_query_needs_a_known_user() -> None:
    policy = TokenPolicy(secret="s" * 32)
    adm = GatewaySession.admit(
        {"userId": "u1", "resumeAfter": "m1"}, {}, policy=policy, open_access=True, now_s=0
    )
    assert adm.resume_after == "m1" and adm.user_id == "u1"
    with pytest.raises(QueryError, match="resumeAfter needs the user"):
        GatewaySession.admit({"resumeAfter": "m1"}, {}, policy=policy, open_access=True, now_s=0)
    with pytest.raises(QueryError, match="resumeAfter must be"):
        GatewaySession.admit(
            {"userId": "u1", "resumeAfter": "x" * 200}, {}, policy=policy, open_access=True,
            now_s=0,
        )  # fmt: skip
