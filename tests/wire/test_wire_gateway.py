from __future__ import annotations

import json
from typing import Any

import pytest

from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace


def test_original_client_frame_is_accepted() -> None:
    cm = gw.parse_client_frame('{"type":"message","text":"hello","userId":"u1"}')
    assert (cm.text, cm.user_id, cm.id, cm.trace, cm.stream) == ("hello", "u1", None, None, None)


def test_frame_with_trace_takes_its_id() -> None:
    tr = Trace.start("m9")
    tr.stamp("client.send", "client", t_ns=1)
    cm = gw.parse_client_frame(gw.message_frame("hi", user_id="u", trace=tr, stream=False))
    assert cm.id == "m9" and cm.trace == tr and cm.stream is False


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "invalid JSON"),
        ("[1,2]", "JSON object"),
        ('{"type":"hello","text":"x"}', "unknown type"),
        ('{"text":"x"}', "unknown type"),
        ('{"type":"message"}', "'text'"),
        ('{"type":"message","text":"   "}', "'text'"),
        ('{"type":"message","text":5}', "'text'"),
        ('{"type":"message","text":"x","userId":""}', "'userId'"),
        ('{"type":"message","text":"x","userId":"a/b"}', "'userId'"),
        ('{"type":"message","text":"x","id":7}', "'id'"),
        ('{"type":"message","text":"x","stream":"yes"}', "'stream'"),
        ('{"type":"message","text":"x","trace":{"id":1}}', "bad trace"),
        (b'{"type":"message","text":"x"}', "binary"),
    ],
)
def test_bad_client_frames_get_a_reason(frame: Any, reason: Any) -> None:
    with pytest.raises(gw.FrameError, match=reason):
        gw.parse_client_frame(frame)


def test_frame_over_the_size_limit_is_refused() -> None:
    big = json.dumps({"type": "message", "text": "x" * 2000})
    with pytest.raises(gw.FrameError, match="1000-byte limit"):
        gw.parse_client_frame(big, max_frame_bytes=1000)
    assert gw.parse_client_frame(big, max_frame_bytes=5000).text == "x" * 2000


def test_multibyte_text_is_measured_in_bytes() -> None:
    text = json.dumps({"type": "message", "text": "é" * 600}, ensure_ascii=False)
    assert len(text) < 1000 < len(text.encode())
    with pytest.raises(gw.FrameError):
        gw.parse_client_frame(text, max_frame_bytes=1000)


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    with pytest.raises(gw.FrameError):
        gw.parse_client_frame("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (gw.response_frame("hi", user_id="u"), gw.ServerFrameKind.RESPONSE),
        (gw.stream_start_frame(user_id="u"), gw.ServerFrameKind.START),
        (gw.chunk_frame("h", user_id="u"), gw.ServerFrameKind.CHUNK),
        (gw.complete_frame("hi", user_id="u"), gw.ServerFrameKind.COMPLETE),
        (gw.error_frame("boom"), gw.ServerFrameKind.ERROR),
        ('{"type":"cf_agent_state","state":{}}', gw.ServerFrameKind.OTHER),
        ("garbage", gw.ServerFrameKind.OTHER),
        # json.loads raises RecursionError here, which once escaped the classifier
        ("[" * 100_000, gw.ServerFrameKind.OTHER),
    ],
)
def test_server_frames_are_classified_as_the_original_client_does(frame: Any, kind: Any) -> None:
    assert gw.parse_server_frame(frame).kind is kind


def test_server_frames_use_the_original_flags() -> None:
    assert json.loads(gw.stream_start_frame(user_id="u")) == {
        "type": "response",
        "streaming": True,
        "userId": "u",
    }
    assert json.loads(gw.chunk_frame("ab", msg_id="m"))["chunk"] is True
    done = json.loads(gw.complete_frame("abc", trace=Trace.start("m")))
    assert done["complete"] is True and done["text"] == "abc" and done["trace"]["id"] == "m"


def test_a_resume_frame_names_the_last_reply_seen_and_the_ids_still_waiting() -> None:
    req = gw.parse_gateway_frame(gw.resume_frame("m4", ["m5", "m6", "m5"], user_id="u1"))
    assert req == gw.ResumeRequest("m4", ("m5", "m6"), "u1")
    assert gw.parse_gateway_frame('{"type":"resume"}') == gw.ResumeRequest(None, (), None)
    assert isinstance(gw.parse_gateway_frame(gw.message_frame("hi")), gw.ClientMessage)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"type":"resume","after":7}', "'after' must be a message id"),
        ('{"type":"resume","after":""}', "'after' must be a message id"),
        ('{"type":"resume","after":"' + "x" * 129 + '"}', "'after' must be a message id"),
        ('{"type":"resume","pending":"m1"}', "'pending' must be a list"),
        ('{"type":"resume","pending":[1]}', "'pending' must be a list"),
        ('{"type":"resume","pending":' + json.dumps(["m"] * 257) + "}", "at most 256"),
        ('{"type":"resume","userId":"a/b"}', "'userId'"),
        ('{"type":"hello"}', "expected 'message' or 'resume'"),
    ],
)
def test_a_bad_resume_is_refused_with_a_reason(frame: str, reason: str) -> None:
    with pytest.raises(gw.FrameError, match=reason):
        gw.parse_gateway_frame(frame)


def test_the_agent_hosts_own_socket_still_takes_messages_only() -> None:
    with pytest.raises(gw.FrameError, match=r"expected 'message'$"):
        gw.parse_client_frame('{"type":"resume","after":"m1"}')


def test_replays_and_the_end_of_a_resume_are_told_apart_by_a_client() -> None:
    replay = gw.parse_server_frame(gw.replay_frame("hi", user_id="u1", msg_id="m2"))
    assert replay.kind is gw.ServerFrameKind.RESPONSE and replay.replay and replay.text == "hi"
    live = gw.parse_server_frame(gw.response_frame("hi", msg_id="m2"))
    assert not live.replay
    end = gw.parse_server_frame(gw.resumed_frame("m1", replayed=1, pending={"m2": "done"}))
    assert end.kind is gw.ServerFrameKind.RESUMED and end.id == "m1"
    assert end.pending == {"m2": "done"} and end.error is None
    bad = gw.parse_server_frame(gw.resumed_frame("m0", error="unknown message id 'm0'"))
    assert bad.kind is gw.ServerFrameKind.RESUMED and bad.error == "unknown message id 'm0'"
