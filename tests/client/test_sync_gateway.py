from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from travelagent.client.records import MessageRecord
from travelagent.client.sync_gateway import GatewayClient, gateway_ws_url
from travelagent.runner.procs import ROOT, ServedProcess

STANDIN = str(ROOT / "loadtests" / "standin.py")


def standin(*flags: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ServedProcess([STANDIN, "--port", str(port), *flags], f"{url}/healthz"):
        yield url


@pytest.fixture(scope="module")
def plain() -> Iterator[str]:
    yield from standin("--delay-ms", "5")


@pytest.fixture(scope="module")
def streamed() -> Iterator[str]:
    yield from standin("--delay-ms", "5", "--stream")


@pytest.fixture(scope="module")
def original() -> Iterator[str]:
    yield from standin("--delay-ms", "5", "--no-ids")


def names(rec: MessageRecord) -> list[str]:
    assert rec.trace is not None
    return [n for n, _, _ in rec.trace.stamps]


def test_gateway_url_gets_standard_path_and_user_query() -> None:
    assert gateway_ws_url("http://h:1", "u1") == "ws://h:1/api/gateway/ws?userId=u1"
    assert gateway_ws_url("wss://h/x?userId=z", "u1") == "wss://h/x?userId=z"
    with pytest.raises(ValueError, match="http"):
        gateway_ws_url("ftp://h", "u1")


def test_whole_reply_merges_server_stamps_between_client_stamps(plain: str) -> None:
    c = GatewayClient(plain, "u1", run="r", cell="c")
    rec = c.request("Paris hotels?")
    c.close()
    assert rec.status == "ok" and rec.chunks == 0 and not rec.streaming
    assert names(rec) == [
        "client.send",
        "worker.recv",
        "worker.send",
        "client.first",
        "client.recv",
    ]
    assert rec.send_ns == rec.intended_ns < rec.first_ns <= rec.recv_ns  # type: ignore[operator]
    assert rec.bytes > 0 and rec.run == "r" and rec.cell == "c" and rec.arch == "gateway"


def test_streamed_reply_counts_chunks_and_first_is_first_chunk(streamed: str) -> None:
    c = GatewayClient(streamed, "u2")
    rec = c.request("Tell me about Rome")
    c.close()
    assert rec.status == "ok" and rec.streaming
    assert rec.chunks == len("Reply to: Tell me about Rome".split(" "))
    assert rec.first_ns is not None and rec.recv_ns is not None and rec.first_ns < rec.recv_ns
    assert names(rec)[-2:] == ["client.first", "client.recv"]


def test_peer_without_ids_or_traces_gets_client_stamps_only(original: str) -> None:
    c = GatewayClient(original, "u3")
    recs = [c.request(f"q{i}") for i in range(3)]
    c.close()
    assert [r.status for r in recs] == ["ok"] * 3
    assert names(recs[0]) == ["client.send", "client.first", "client.recv"]


def test_error_frame_ends_message_as_error(plain: str) -> None:
    c = GatewayClient(plain, "u4")
    rec = c.request("error")
    ok = c.request("after the error")
    c.close()
    assert rec.status == "error" and "stand-in error" in rec.error and rec.recv_ns is None
    assert ok.status == "ok"


def test_message_without_reply_times_out_and_socket_keeps_working(plain: str, tf: float) -> None:
    c = GatewayClient(plain, "u5", timeout_s=0.3 * tf)
    rec = c.request("silence")
    ok = c.request("hello")
    c.close()
    assert rec.status == "timeout" and rec.recv_ns is None
    assert ok.status == "ok"


def test_open_loop_sends_do_not_wait_and_every_reply_is_matched(streamed: str) -> None:
    done: list[MessageRecord] = []
    c = GatewayClient(streamed, "u6", on_done=done.append)
    stop = threading.Event()
    rx = threading.Thread(target=c.receive_forever, args=(stop,))
    rx.start()
    pend = [c.send(f"m{i}", intended_ns=i) for i in range(5)]
    for p in pend:
        assert p.done.wait(10)
    stop.set()
    rx.join()
    c.close()
    assert sorted(r.msg_id for r in done) == sorted(p.record.msg_id for p in pend)
    assert [p.record.intended_ns for p in pend] == list(range(5))
    assert all(r.status == "ok" for r in done)


def test_connection_refused_raises_clearly() -> None:
    c = GatewayClient(f"http://127.0.0.1:{free_port()}", "u7", connect_timeout_s=1)
    with pytest.raises(OSError):
        c.request("hi")


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    yield from standin("--delay-ms", "100")


def test_client_runs_concurrently_under_gevent_monkey_patching(slow: str, tf: float) -> None:
    plain = slow
    script = textwrap.dedent(
        f"""
        from gevent import monkey; monkey.patch_all()
        import gevent, time
        from travelagent.client.sync_gateway import GatewayClient
        def one(i):
            c = GatewayClient({plain!r}, f"g{{i}}")
            recs = [c.request("hello") for _ in range(3)]
            c.close()
            return [r.status for r in recs]
        t0 = time.monotonic()
        gs = [gevent.spawn(one, i) for i in range(30)]
        gevent.joinall(gs, timeout=20)
        assert all(g.value == ["ok"] * 3 for g in gs), [g.value or g.exception for g in gs]
        print(round(time.monotonic() - t0, 3))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60 * tf,
        cwd=Path(ROOT),
    )
    assert res.returncode == 0, res.stderr
    # 30 users x 3 replies of 100 ms: 9 s one after another, about 0.3 s if greenlets overlap.
    assert float(res.stdout.strip()) < 3 * tf


@pytest.mark.parametrize("flags", [(), ("--no-ids",), ("--stream",)])
def test_stand_in_without_delay_answers_a_burst_in_order_one_at_a_time(
    flags: tuple[str, ...],
) -> None:
    """With no delay the stand-in answers where it reads: still every message, in order (a peer
    without ids is matched in order, so a reply out of order would be given to the wrong one)."""
    for url in standin(*flags):
        done: list[MessageRecord] = []
        c = GatewayClient(url, "u8", on_done=done.append)
        stop = threading.Event()
        rx = threading.Thread(target=c.receive_forever, args=(stop,))
        rx.start()
        texts = ["error" if i == 7 else f"m{i}" for i in range(60)]
        pend = [c.send(t) for t in texts]
        for p in pend:
            assert p.done.wait(10)
        stop.set()
        rx.join()
        c.close()
        by_id = {r.msg_id: r for r in done}
        recs = [by_id[p.record.msg_id] for p in pend]
        assert [r.status for r in recs] == ["error" if i == 7 else "ok" for i in range(60)]
        assert [r.reply.strip() for r in recs if r.status == "ok"] == [
            f"Reply to: {t}" for t in texts if t != "error"
        ]
