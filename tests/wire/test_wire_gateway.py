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
