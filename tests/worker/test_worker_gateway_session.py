"""The gateway socket's rules with no socket: frames in with a time, accept or refuse out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from travelagent.wire.trace import MAX_STAMPS, Trace
from travelagent.worker.gateway_session import Accept, GatewaySession, QueryError, Refuse


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
