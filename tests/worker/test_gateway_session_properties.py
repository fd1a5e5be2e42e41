"""Properties of one gateway socket's rules: any frame is accepted or refused; binding holds."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, TEXT

from travelagent.wire import gateway as gw
from travelagent.worker.gateway_session import (
    Accept,
    GatewaySession,
    QueryError,
    Refuse,
    Resume,
)

USERS = st.sampled_from(["u1", "u2"])


def frames() -> st.SearchStrategy[str]:
    messages = st.fixed_dictionaries(
        {"type": st.just("message"), "text": st.one_of(st.just("hi"), JSON_VALUES)},
        optional={"userId": st.one_of(USERS, JSON_VALUES), "id": JSON_VALUES},
    )
    resumes = st.fixed_dictionaries(
        {"type": st.just("resume")},
        optional={
            "after": st.one_of(st.just("m1"), JSON_VALUES),
            "pending": st.one_of(st.lists(st.sampled_from(["m1", "m2", ""])), JSON_VALUES),
            "userId": st.one_of(USERS, JSON_VALUES),
        },
    )
    return st.one_of(
        messages.map(json.dumps),
        resumes.map(json.dumps),
        JSON_OBJECTS.map(json.dumps),
        st.text(max_size=30),
    )


@given(
    st.none() | USERS,
    st.lists(st.tuples(frames(), st.integers(min_value=0, max_value=70)), max_size=8),
)
def test_every_frame_is_accepted_or_refused_and_the_socket_stays_bound_to_one_user(
    query_user: str | None, inputs: list[tuple[str, int]]
) -> None:
    session = GatewaySession(user_id=query_user, room="lobby", max_inflight=64)
    bound = query_user
    joined = 0
    for t_ns, (text, inflight) in enumerate(inputs):
        out = session.receive_text(text, t_ns, inflight=inflight)
        assert isinstance(out, Accept | Resume | Refuse)
        joined += out.join_room is not None
        if isinstance(out, Refuse):
            assert out.reason
            continue
        if isinstance(out, Resume):  # binds like a message, never to another user
            assert bound is None or out.user_id == bound
            assert out.after is None or gw.valid_msg_id(out.after)
            assert all(gw.valid_msg_id(m) for m in out.pending)
            bound = out.user_id
            continue
        assert inflight < 64 and out.text.strip()
        assert bound is None or out.user_id == bound
        bound = out.user_id
        assert out.trace.get("worker.recv") == t_ns or out.trace.room == 0
    assert joined <= (1 if query_user is None else 0)
    assert session.user_id == bound or bound is None


@given(st.dictionaries(st.sampled_from(["userId", "room", "x"]), TEXT))
def test_any_query_is_parsed_or_refused_with_a_reason(query: dict[str, str]) -> None:
    try:
        user, room = GatewaySession.parse_query(query)
    except QueryError as err:
        assert str(err)
    else:
        assert user is None or gw.valid_user_id(user)
        assert room is None or gw.valid_user_id(room)
