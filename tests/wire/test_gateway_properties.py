"""Properties of the gateway wire format: any frame parses or gets a reason; frames round trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, MSG_IDS, TEXT, TRACES, deep_nesting

from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace

USER_IDS = st.text(min_size=1, max_size=gw.MAX_USER_ID_CHARS).filter(gw.valid_user_id)
MESSAGE_TEXT = st.text(min_size=1).filter(str.strip)


def near_valid_frames() -> st.SearchStrategy[dict[str, Any]]:
    """A valid message frame with one key replaced by an arbitrary JSON value."""
    base = {"type": "message", "text": "hotels in Paris", "userId": "u1", "id": "m1"}
    keys = st.sampled_from(["type", "text", "userId", "id", "stream", "trace"])
    return st.tuples(keys, JSON_VALUES).map(lambda kv: {**base, kv[0]: kv[1]})


def parses_or_refuses(data: str | bytes) -> gw.ClientMessage | None:
    try:
        return gw.parse_client_frame(data, max_frame_bytes=4096)
    except gw.FrameError as err:
        assert str(err)  # the reason goes back in the error frame
        return None


@given(st.one_of(st.text(), st.binary(), JSON_VALUES.map(json.dumps), deep_nesting()))
def test_any_client_frame_parses_or_gets_a_reason(data: str | bytes) -> None:
    parses_or_refuses(data)


@given(st.one_of(JSON_OBJECTS, near_valid_frames()))
def test_a_parsed_client_frame_holds_only_valid_fields(obj: dict[str, Any]) -> None:
    msg = parses_or_refuses(json.dumps(obj))
    if msg is None:
        return
    assert isinstance(msg.text, str) and msg.text.strip()
    assert msg.user_id is None or gw.valid_user_id(msg.user_id)
    assert msg.id is None or (isinstance(msg.id, str) and 0 < len(msg.id) <= gw.MAX_MSG_ID_CHARS)
    assert msg.stream in (None, True, False)
    assert msg.trace is None or isinstance(msg.trace, Trace)


@given(
    MESSAGE_TEXT,
    st.none() | USER_IDS,
    st.none() | MSG_IDS,
    st.none() | TRACES,
    st.none() | st.booleans(),
)
def test_message_frame_round_trips(
    text: str, user: str | None, msg_id: str | None, trace: Trace | None, stream: bool | None
) -> None:
    frame = gw.message_frame(text, user_id=user, msg_id=msg_id, trace=trace, stream=stream)
    msg = gw.parse_client_frame(frame, max_frame_bytes=1 << 30)
    assert (msg.text, msg.user_id, msg.stream) == (text, user, stream)
    assert msg.trace == trace
    assert msg.id == (msg_id if msg_id is not None else (trace.id if trace else None))


@given(st.text(min_size=1, max_size=64), st.integers(min_value=1, max_value=256))
def test_a_frame_over_the_limit_is_refused_by_its_utf8_size(text: str, limit: int) -> None:
    frame = gw.message_frame(text + "é", user_id="u1")
    try:
        gw.parse_client_frame(frame, max_frame_bytes=limit)
    except gw.FrameError as err:
        assert "limit" in str(err) and len(frame.encode()) > limit
    else:
        assert len(frame.encode()) <= limit


@given(st.one_of(st.text(), st.binary(), JSON_VALUES.map(json.dumps), deep_nesting()))
def test_any_server_frame_is_classified_never_raised(data: str | bytes) -> None:
    assert isinstance(gw.parse_server_frame(data).kind, gw.ServerFrameKind)


@given(TEXT, st.none() | USER_IDS, st.none() | MSG_IDS, st.none() | TRACES)
def test_every_server_frame_round_trips_to_its_kind(
    text: str, user: str | None, msg_id: str | None, trace: Trace | None
) -> None:
    ids = {"user_id": user, "msg_id": msg_id}
    cases = [
        (gw.response_frame(text, trace=trace, **ids), gw.ServerFrameKind.RESPONSE, text),
        (gw.error_frame(text, trace=trace, **ids), gw.ServerFrameKind.ERROR, ""),
        (gw.stream_start_frame(**ids), gw.ServerFrameKind.START, ""),
        (gw.chunk_frame(text, **ids), gw.ServerFrameKind.CHUNK, text),
        (gw.complete_frame(text, trace=trace, **ids), gw.ServerFrameKind.COMPLETE, text),
    ]
    for frame, kind, want_text in cases:
        parsed = gw.parse_server_frame(frame)
        assert (parsed.kind, parsed.text, parsed.user_id, parsed.id) == (
            kind,
            want_text,
            user,
            msg_id,
        )
        if kind is gw.ServerFrameKind.ERROR:
            assert parsed.error == text
        if kind in (gw.ServerFrameKind.RESPONSE, gw.ServerFrameKind.COMPLETE):
            assert parsed.trace == trace


@given(TRACES)
def test_trace_round_trips_through_the_wire(trace: Trace) -> None:
    assert Trace.from_wire(json.loads(json.dumps(trace.to_wire()))) == trace


def near_valid_resumes() -> st.SearchStrategy[dict[str, Any]]:
    """A valid resume frame with one key replaced by an arbitrary JSON value."""
    base = {"type": "resume", "after": "m1", "pending": ["m2"], "userId": "u1"}
    keys = st.sampled_from(["after", "pending", "userId"])
    return st.tuples(keys, JSON_VALUES).map(lambda kv: {**base, kv[0]: kv[1]})


@given(st.one_of(JSON_OBJECTS, near_valid_frames(), near_valid_resumes()))
def test_any_frame_is_a_message_a_resume_or_gets_a_reason(obj: dict[str, Any]) -> None:
    try:
        out = gw.parse_gateway_frame(json.dumps(obj), max_frame_bytes=4096)
    except gw.FrameError as err:
        assert str(err)
        return
    if isinstance(out, gw.ResumeRequest):
        assert out.after is None or gw.valid_msg_id(out.after)
        assert len(out.pending) <= gw.MAX_RESUME_PENDING
        assert all(gw.valid_msg_id(m) for m in out.pending)
        assert len(set(out.pending)) == len(out.pending)
        assert out.user_id is None or gw.valid_user_id(out.user_id)
    else:
        assert isinstance(out, gw.ClientMessage) and out.text.strip()


@given(st.one_of(st.none(), MSG_IDS), st.lists(MSG_IDS, max_size=5))
def test_a_resume_frame_round_trips(after: str | None, pending: list[str]) -> None:
    out = gw.parse_gateway_frame(gw.resume_frame(after, pending))
    assert out == gw.ResumeRequest(after, tuple(dict.fromkeys(pending)), None)


@given(JSON_VALUES)
def test_any_server_frame_that_says_resumed_is_classified_without_raising(value: Any) -> None:
    frame = gw.parse_server_frame(json.dumps({"type": "resumed", "after": value, "pending": value}))
    assert frame.kind is gw.ServerFrameKind.RESUMED
    assert frame.pending is None or isinstance(frame.pending, dict)
