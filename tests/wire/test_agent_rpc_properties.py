"""Properties of the agent host's RPC: requests and replies round trip; bad input says why."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, TEXT, TRACES, deep_nesting

from travelagent.wire import agent_rpc as rpc
from travelagent.wire import ndjson
from travelagent.wire.trace import Trace


@given(st.text(min_size=1).filter(str.strip), st.none() | TRACES, st.booleans())
def test_a_request_round_trips(text: str, trace: Trace | None, stream: bool) -> None:
    body = json.loads(json.dumps(rpc.request_body(text, trace, stream)))
    assert rpc.parse_request(body) == rpc.RpcRequest(text, stream, trace)


@given(st.one_of(JSON_VALUES, JSON_OBJECTS))
def test_any_request_body_parses_or_gets_a_reason(body: Any) -> None:
    try:
        req = rpc.parse_request(body)
    except rpc.RpcError as err:
        assert str(err)
    else:
        assert req.text.strip() and isinstance(req.stream, bool)


@given(st.lists(TEXT, max_size=4), TEXT, st.none() | TRACES, st.lists(JSON_OBJECTS, max_size=2))
def test_a_streamed_reply_reads_back_as_its_chunks_then_done(
    chunks: list[str], text: str, trace: Trace | None, events: list[dict[str, Any]]
) -> None:
    body = b"".join(rpc.chunk_line(c) for c in chunks) + rpc.done_line(text, trace, events)
    items = [rpc.parse_stream_line(line) for line in ndjson.lines(body)]
    assert items[:-1] == [rpc.Chunk(c) for c in chunks]
    done = items[-1]
    assert isinstance(done, rpc.Done) and done.text == text
    assert rpc.returned_trace(done.body) == trace and done.body.get("events", []) == events


@given(st.one_of(st.text(), deep_nesting(), JSON_VALUES.map(json.dumps)))
def test_any_stream_line_is_an_item_or_an_rpc_error(line: str) -> None:
    try:
        item = rpc.parse_stream_line(line)
    except rpc.RpcError as err:
        assert str(err)
    else:
        assert item is None or isinstance(item, rpc.Chunk | rpc.Done | rpc.Failed)


@given(st.one_of(JSON_VALUES, JSON_OBJECTS))
def test_any_reply_and_its_trace_read_back_or_raise_rpc_error(data: Any) -> None:
    try:
        done = rpc.parse_reply(data)
        rpc.returned_trace(done.body)
    except rpc.RpcError as err:
        assert str(err)


@given(
    st.one_of(
        st.binary(), deep_nesting().map(str.encode), JSON_VALUES.map(json.dumps).map(str.encode)
    )
)
def test_any_error_body_gives_a_reason_string(body: bytes) -> None:
    assert isinstance(rpc.error_reason(body), str)


@given(JSON_VALUES)
def test_any_replies_request_parses_or_gets_a_reason(body: Any) -> None:
    try:
        after, ids = rpc.parse_replies_request(body)
    except rpc.RpcError as err:
        assert str(err)
        return
    assert after is None or (isinstance(after, str) and after)
    assert all(isinstance(i, str) and i for i in ids) and len(ids) <= rpc.MAX_RESUME_IDS


@given(
    st.lists(st.tuples(TEXT.filter(bool), st.integers(0, 10**6), TEXT), max_size=4),
    st.dictionaries(TEXT, st.sampled_from(["new", "started", "done"]), max_size=4),
)
def test_replies_round_trip(replies: list[tuple[str, int, str]], pending: dict[str, str]) -> None:
    wire = json.loads(json.dumps(rpc.replies_body(replies, pending)))
    assert rpc.parse_replies(wire) == (replies, pending)


@given(JSON_VALUES)
def test_any_replies_answer_reads_back_or_raises_rpc_error(data: Any) -> None:
    try:
        rpc.parse_replies(data)
    except rpc.RpcError as err:
        assert str(err)
