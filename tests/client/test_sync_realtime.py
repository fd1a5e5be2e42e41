from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import free_port

from travelagent.client.records import MessageRecord
from travelagent.client.sync_realtime import (
    RealtimeClient,
    RealtimeError,
    classify_publication,
    decode_frames,
    realtime_ws_url,
)
from travelagent.config import API_KEY_ENV, JWT_SECRET_ENV
from travelagent.runner.procs import ServedProcess
from travelagent.wire.trace import Trace

SECRET = "sync-realtime-test-secret-0123456789abcdef"
KEY = "sync-realtime-test-key"


def test_frames_split_on_newlines_and_junk_is_skipped() -> None:
    assert list(decode_frames('{"id":1}\n{}\nnot json\n[1]\n{"push":{}}')) == [
        {"id": 1},
        {},
        {"push": {}},
    ]


def test_publications_are_classified_like_gateway_frames() -> None:
    t = Trace.start("m1")
    assert classify_publication({"type": "message", "id": "m1"}, 10, 1) is None  # own echo
    start = classify_publication({"type": "agent_response", "id": "m1", "streaming": True}, 5, 1)
    chunk = classify_publication(
        {"type": "agent_response", "id": "m1", "chunk": True, "text": "Ro"}, 5, 1
    )
    done = classify_publication(
        {
            "type": "agent_response",
            "id": "m1",
            "complete": True,
            "text": "Rome",
            "trace": t.to_wire(),
        },
        5,
        1,
    )
    err = classify_publication(
        {"type": "agent_response", "id": "m1", "isError": True, "text": "x"}, 5, 1
    )
    assert start is not None and start.kind == "start"
    assert chunk is not None and chunk.kind == "chunk" and chunk.text == "Ro"
    assert done is not None and done.kind == "final" and done.trace is not None
    assert err is not None and err.kind == "error" and err.error == "x"
    bad = classify_publication({"type": "agent_response", "trace": {"id": 5}}, 5, 1)
    assert bad is not None and bad.trace is None  # a malformed trace is dropped, not fatal


def test_realtime_url_gets_the_client_path() -> None:
    assert realtime_ws_url("http://h:1") == "ws://h:1/connection/websocket"
    assert realtime_ws_url("wss://h/x") == "wss://h/x"


@pytest.fixture(scope="module")
def realtime() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env_before = {k: os.environ.get(k) for k in (JWT_SECRET_ENV, API_KEY_ENV)}
    os.environ[JWT_SECRET_ENV], os.environ[API_KEY_ENV] = SECRET, KEY
    try:
        argv = ["-m", "travelagent", "serve", "realtime", "--port", str(port), "--webhook-url", "",
                "--ping-interval-s", "0.5"]  # fmt: skip
        import sys

        with ServedProcess([sys.executable, *argv], f"{url}/healthz"):
            yield url
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def publish(url: str, channel: str, data: dict[str, Any]) -> None:
    r = httpx.post(f"{url}/api/publish", json={"channel": channel, "data": data},
                   headers={"X-API-Key": KEY})  # fmt: skip
    assert r.status_code == 200, r.text


def agent(url: str, client: RealtimeClient, frames: list[dict[str, Any]]) -> threading.Thread:
    """Answer the next message like the worker would: publish frames with its id and trace."""

    def run() -> None:
        deadline = time.monotonic() + 5
        while not len(client.pending) and time.monotonic() < deadline:
            time.sleep(0.01)
        (mid,) = list(client.pending._pending)
        trace = client.pending._pending[mid].trace.copy()
        trace.stamp("realtime.recv", "realtime")
        for f in frames:
            data = {"type": "agent_response", "userId": client.user_id, "id": mid, **f}
            if f.get("complete") or f.get("isError") or not (f.get("chunk") or f.get("streaming")):
                data["trace"] = trace.to_wire()
            publish(url, f"travel:{client.user_id}", data)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_streamed_reply_completes_the_message_and_own_echo_is_ignored(realtime: str) -> None:
    c = RealtimeClient(realtime, "alice", jwt_secret=SECRET, timeout_s=5)
    c.connect()
    t = agent(
        realtime,
        c,
        [
            {"streaming": True},
            {"chunk": True, "text": "Ro"},
            {"chunk": True, "text": "me"},
            {"complete": True, "text": "Rome"},
        ],
    )
    rec = c.request("Where to?")
    t.join()
    c.close()
    assert rec.status == "ok" and rec.chunks == 2 and rec.streaming
    assert rec.trace is not None
    names = [n for n, _, _ in rec.trace.stamps]
    assert names[:2] == ["client.send", "realtime.recv"]  # the reply's trace, as published
    assert names[-2:] == ["client.first", "client.recv"]  # then the client's own stamps
    assert "realtime.deliver" in names


def test_error_publication_ends_the_message_as_error(realtime: str) -> None:
    c = RealtimeClient(realtime, "bob", jwt_secret=SECRET, timeout_s=5)
    c.connect()
    t = agent(realtime, c, [{"isError": True, "text": "agent failed"}])
    rec = c.request("Hello")
    t.join()
    c.close()
    assert rec.status == "error" and rec.error == "agent failed"


def test_client_answers_pings_and_unanswered_message_times_out(realtime: str, tf: float) -> None:
    done: list[MessageRecord] = []
    c = RealtimeClient(
        realtime, "carol", jwt_secret=SECRET, timeout_s=2.5 * tf, on_done=done.append
    )
    c.connect()
    rec = c.request("Nobody answers")  # no webhook target: only the echo comes back
    assert rec.status == "timeout" and done == [rec]
    # Server pings every 0.5 s were answered while waiting: the socket is still usable.
    t = agent(realtime, c, [{"text": "Now someone does"}])
    ok = c.request("Still there?")
    t.join()
    c.close()
    assert ok.status == "ok" and ok.chunks == 0


def test_wrong_secret_is_refused_with_a_clear_error(realtime: str) -> None:
    c = RealtimeClient(
        realtime, "mallory", jwt_secret="wrong-secret-wrong-secret-wrong-secret", timeout_s=1
    )
    with pytest.raises(RealtimeError, match="connect refused"):
        c.connect()
    assert not c.connected


def test_room_presence_pushes_are_counted(realtime: str, tf: float) -> None:
    seen: list[tuple[str, str]] = []
    watcher = RealtimeClient(realtime, "w", jwt_secret=SECRET, agent=False, rooms=("room:lobby",),
                             on_push=lambda k, ch: seen.append((k, ch)))  # fmt: skip
    watcher.connect()
    other = RealtimeClient(realtime, "o", jwt_secret=SECRET, agent=False, rooms=("room:lobby",))
    other.connect()
    other.close()
    deadline = time.monotonic() + 5 * tf
    while len(seen) < 2 and time.monotonic() < deadline:
        watcher.pump(0.1)
    watcher.close()
    assert ("join", "room:lobby") in seen and ("leave", "room:lobby") in seen
    assert watcher.presence.joins >= 1 and watcher.presence.leaves >= 1
    assert json.dumps(seen)


def test_a_push_in_the_same_frame_as_a_reply_is_not_dropped(tf: float) -> None:
    """The server may batch a subscribe reply and the next user's join push into one frame
    (it does under load): the push after the reply must still reach ``on_push``."""
    from websockets.sync.server import serve

    def handler(ws: Any) -> None:
        for raw in ws:
            for line in str(raw).splitlines():
                cmd = json.loads(line)
                if "connect" in cmd:
                    ws.send(json.dumps({"id": cmd["id"], "connect": {"client": "c1"}}))
                elif "subscribe" in cmd:
                    join = {"push": {"channel": "room:lobby",
                                     "join": {"info": {"user": "u2", "client": "c2"}}}}  # fmt: skip
                    ws.send(
                        json.dumps({"id": cmd["id"], "subscribe": {}}) + "\n" + json.dumps(join)
                    )

    pushes: list[tuple[str, str]] = []
    with serve(handler, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = RealtimeClient(
            f"http://127.0.0.1:{port}", "u1", jwt_secret=SECRET, agent=False,
            rooms=("room:lobby",), on_push=lambda kind, ch: pushes.append((kind, ch)),
        )  # fmt: skip
        client.connect()
        client.close()
        server.shutdown()
    assert pushes == [("join", "room:lobby")]
