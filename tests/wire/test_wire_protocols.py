"""Both halves of each protocol in wire/, with no sockets: what one end writes, the other reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from travelagent.wire import agent_rpc as rpc
from travelagent.wire import centrifugo as cf
from travelagent.wire import ndjson
from travelagent.wire import server_api as api
from travelagent.wire.trace import Trace


# --- newline-separated JSON ------------------------------------------------------------------
def test_lines_keep_each_non_blank_line_as_it_is_and_decode_bytes() -> None:
    assert list(ndjson.lines('{"a":1}\n\n  \n {"b":2}')) == ['{"a":1}', ' {"b":2}']
    assert list(ndjson.lines(b'{"a":1}\n')) == ['{"a":1}']


def test_objects_skip_lines_that_are_not_json_objects() -> None:
    text = '{"a":1}\nnot json\n[1,2]\n{"b":"é"}'
    assert [obj for obj, _ in ndjson.objects(text)] == [{"a": 1}, {"b": "é"}]


def test_a_line_holding_a_lone_surrogate_is_written_escaped_so_it_encodes_as_utf8() -> None:
    # A client may publish {"text": "\\ud800"}; the push once failed in the socket write.
    line = ndjson.dumps({"text": "\ud800", "city": "Zürich"})
    assert line.encode() == rb'{"text":"\ud800","city":"Z\u00fcrich"}'
    assert json.loads(line) == {"text": "\ud800", "city": "Zürich"}
    assert ndjson.dumps({"city": "Zürich"}) == '{"city":"Zürich"}'


def test_join_writes_one_compact_line_per_message() -> None:
    assert ndjson.join([{"a": 1}, '{"b":2}']) == '{"a":1}\n{"b":2}'
    assert ndjson.line_bytes({"chunk": "x"}) == b'{"chunk": "x"}\n'


# --- Centrifugo, the client's side -------------------------------------------------------------
def test_a_client_command_is_what_the_server_decodes() -> None:
    line = cf.command(7, "publish", {"channel": "travel:u1", "data": {"text": "hi"}})
    [cmd] = cf.decode_frame(line)
    assert cmd == cf.Command(7, "publish", {"channel": "travel:u1", "data": {"text": "hi"}})


def test_a_server_frame_decodes_into_replies_pings_and_pushes_in_order() -> None:
    pub = cf.pub_push("travel:u1", cf.publication({"text": "a"}, offset=3))
    frame = cf.encode([cf.reply(1, "subscribe", {"offset": 2}), cf.PING, pub, "junk"])
    reply, ping, push = cf.decode_server_frame(frame)
    assert isinstance(reply, cf.ServerReply) and reply.result("subscribe") == {"offset": 2}
    assert reply.error is None and isinstance(ping, cf.ServerPing)
    assert isinstance(push, cf.ServerPush) and push.kind == "pub"
    assert push.channel == "travel:u1" and push.body == {"data": {"text": "a"}, "offset": 3}
    assert push.size == len(cf.dumps(pub))


def test_an_error_reply_gives_the_servers_code_and_message() -> None:
    [reply] = cf.decode_server_frame(cf.dumps(cf.error_reply(4, cf.ERROR_PERMISSION_DENIED)))
    assert isinstance(reply, cf.ServerReply)
    assert reply.error == (cf.ERROR_PERMISSION_DENIED, "permission denied")


@pytest.mark.parametrize(
    "line",
    [
        '{"push":1}',
        '{"push":{"channel":1,"pub":{}}}',
        '{"push":{"channel":"c","pub":2}}',
        '{"id":[1]}',
    ],
)
def test_a_malformed_server_line_is_skipped_not_raised(line: str) -> None:
    # Each of these once raised AttributeError in the client's reader, or gave an unhashable id.
    assert cf.decode_server_frame(line) == []


@pytest.mark.parametrize(
    ("error", "want"),
    [("x", (0, "x")), ({"code": "x", "message": "m"}, (0, "m")), ({"code": 7}, (7, ""))],
)
def test_a_malformed_error_reply_reads_as_code_0_not_an_exception(error: object, want: Any) -> None:
    [reply] = cf.decode_server_frame(json.dumps({"id": 1, "error": error}))
    assert isinstance(reply, cf.ServerReply) and reply.error == want
    [sock] = api.decode_socket_replies(json.dumps({"id": 1, "error": error}))
    assert sock.error == want
    assert api.decode_socket_replies('{"id":"1","result":{}}') == []


# --- the server API and its publisher socket -----------------------------------------------
def test_a_publisher_socket_command_is_read_back_by_the_server() -> None:
    line = api.socket_command(3, "publish", api.publish_params("travel:u1", {"x": 1}))
    cmd = api.parse_socket_command(line)
    assert cmd == api.SocketCommand(3, "publish", {"channel": "travel:u1", "data": {"x": 1}})


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("{nope", {"id": 0, "error": {"code": 107, "message": "invalid JSON"}}),
        ("[1]", {"id": 0, "error": {"code": 107, "message": "not an object"}}),
        ('{"id": 5}', {"id": 5, "error": {"code": 107,
                                           "message": "bad request: method must be a string"}}),
    ],
)  # fmt: skip
def test_a_bad_publisher_socket_line_carries_its_error_reply(line: str, reply: dict) -> None:
    with pytest.raises(api.SocketCommandError) as err:
        api.parse_socket_command(line)
    assert err.value.reply == reply


def test_publisher_socket_replies_are_matched_by_id_with_result_or_error() -> None:
    frame = api.encode_replies(
        [api.socket_result(1, {"offset": 4}), api.socket_error(2, {"code": 108, "message": "na"})]
    )
    ok, bad = api.decode_socket_replies(frame)
    assert (ok.id, ok.result, ok.error) == (1, {"offset": 4}, None)
    assert (bad.id, bad.error) == (2, (108, "na"))


def test_the_api_key_is_accepted_in_either_spelling_and_a_wrong_one_refused() -> None:
    assert api.authorized(api.api_key_headers("k"), "k")
    assert api.authorized({"Authorization": "apikey k"}, "k")
    assert not api.authorized({"X-API-Key": "nope"}, "k") and not api.authorized({}, "k")
    # undecodable header bytes reach us as lone surrogates: refused, no UnicodeEncodeError (500)
    assert not api.authorized({"X-API-Key": "\udcff\udcfe"}, "k")


def test_the_socket_url_is_derived_from_a_base_url() -> None:
    assert api.socket_url("http://h:8000") == "ws://h:8000/api/ws"
    assert api.socket_url("wss://h/api/ws") == "wss://h/api/ws"


# --- the agent host's RPC ------------------------------------------------------------------
def test_an_rpc_request_round_trips_with_its_trace() -> None:
    tr = Trace.start("m1")
    tr.stamp("worker.recv", "worker", t_ns=1)
    req = rpc.parse_request(json.loads(json.dumps(rpc.request_body("hi", tr, True))))
    assert (req.text, req.stream) == ("hi", True) and req.trace == tr


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "body must be a JSON object"),
        ({"text": " "}, "'text' must be a non-empty string"),
        ({"text": "x", "stream": "yes"}, "'stream' must be true or false"),
        ({"text": "x", "trace": {"id": ""}}, "bad trace"),
    ],
)
def test_a_bad_rpc_request_says_why(body: object, reason: str) -> None:
    with pytest.raises(rpc.RpcError, match=reason):
        rpc.parse_request(body)


def test_a_streamed_reply_reads_back_as_chunks_then_done_with_events() -> None:
    tr = Trace.start("m1")
    body = rpc.chunk_line("a") + rpc.chunk_line("b") + rpc.done_line("ab", tr, [{"type": "x"}])
    items = [rpc.parse_stream_line(line) for line in ndjson.lines(body)]
    assert items[:2] == [rpc.Chunk("a"), rpc.Chunk("b")]
    done = items[2]
    assert isinstance(done, rpc.Done) and done.text == "ab"
    assert done.body["events"] == [{"type": "x"}] and rpc.returned_trace(done.body) == tr


def test_a_failed_stream_ends_with_its_error_and_a_junk_line_is_refused() -> None:
    [line] = ndjson.lines(rpc.error_line("boom", None, []))
    assert rpc.parse_stream_line(line) == rpc.Failed("boom", {"error": "boom", "trace": None})
    with pytest.raises(rpc.RpcError):
        rpc.parse_stream_line("[]")


def test_a_line_or_error_body_nested_too_deeply_for_json_is_refused_not_raised() -> None:
    # json.loads raises RecursionError here; it once escaped both readers.
    with pytest.raises(rpc.RpcError):
        rpc.parse_stream_line("[" * 100_000)
    assert rpc.error_reason(b"[" * 100_000) == "[" * 200


def test_a_whole_reply_and_an_error_body_read_back() -> None:
    assert rpc.parse_reply(rpc.reply_body("hi", None, [])).text == "hi"
    with pytest.raises(rpc.RpcError):
        rpc.parse_reply({"trace": None})
    assert rpc.error_reason(json.dumps(rpc.failure_body("bad", None)).encode()) == "bad"
    assert rpc.error_reason(b"<html>") == "<html>"
