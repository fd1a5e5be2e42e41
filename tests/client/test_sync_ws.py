"""The lean blocking WebSocket client: framing, control frames, closing and the handshake,
against a server played by hand on the other end of a socket."""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from travelagent.client import sync_ws
from travelagent.client.sync_ws import ConnectionClosed, HandshakeError, SyncWebSocket


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One frame from the client: (opcode, unmasked payload); the client must mask."""

    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            assert chunk, "client closed"
            out += chunk
        return out

    b0, b1 = exactly(2)
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    mask = exactly(4)
    data = exactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.fixture
def pair() -> Iterator[tuple[SyncWebSocket, socket.socket]]:
    a, b = socket.socketpair()
    ws = SyncWebSocket(a, max_size=1 << 20)
    yield ws, b
    ws.close_socket()
    b.close()


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_messages_of_every_length_class_go_out_masked_and_come_back(
    pair: tuple[SyncWebSocket, socket.socket], size: int
) -> None:
    ws, peer = pair
    text = ("é" * size)[:size] if size < 1000 else "x" * size
    sender = threading.Thread(target=ws.send, args=(text,))
    sender.start()
    op, payload = read_client_frame(peer)
    sender.join()
    assert op == sync_ws.OP_TEXT and payload.decode() == text
    peer.sendall(server_frame(sync_ws.OP_TEXT, payload))
    assert ws.recv(timeout=5) == text


def test_mask_by_integer_xor_equals_the_byte_by_byte_definition() -> None:
    data, mask = bytes(range(256)) * 3 + b"xyz", b"\x01\x80\xfe\x33"
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert sync_ws.apply_mask(data, mask) == expected
    sync_c = sync_ws._c_apply_mask
    try:
        sync_ws._c_apply_mask = None  # type: ignore[assignment]
        assert sync_ws.apply_mask(data, mask) == expected
        assert sync_ws.apply_mask(b"", mask) == b""
    finally:
        sync_ws._c_apply_mask = sync_c


def test_frames_split_and_joined_across_reads_and_fragments_become_messages(
    pair: tuple[SyncWebSocket, socket.socket],
) -> None:
    ws, peer = pair
    wire = (
        server_frame(sync_ws.OP_TEXT, b"one")
        + server_frame(sync_ws.OP_TEXT, b"fr", fin=False)
        + server_frame(sync_ws.OP_PING, b"p1")  # a control frame between fragments
        + server_frame(sync_ws.OP_CONT, b"ag", fin=False)
        + server_frame(sync_ws.OP_CONT, b"ment")
        + server_frame(sync_ws.OP_BINARY, b"\x00\x01")
    )
    peer.sendall(wire[:3])
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)  # half a frame is kept, not lost
    peer.sendall(wire[3:])
    assert ws.recv(timeout=5) == "one"
    assert ws.recv(timeout=5) == "fragment"
    assert read_client_frame(peer) == (sync_ws.OP_PONG, b"p1")  # the ping was answered
    assert ws.recv(timeout=5) == b"\x00\x01"


def test_ping_event_is_set_by_its_pong(pair: tuple[SyncWebSocket, socket.socket]) -> None:
    ws, peer = pair
    event = ws.ping()
    op, payload = read_client_frame(peer)
    assert op == sync_ws.OP_PING and not event.is_set()
    peer.sendall(server_frame(sync_ws.OP_PONG, payload) + server_frame(sync_ws.OP_TEXT, b"hi"))
    assert ws.recv(timeout=5) == "hi"
    assert event.is_set()


def test_a_close_frame_is_answered_and_ends_the_connection_with_its_code(
    pair: tuple[SyncWebSocket, socket.socket],
) -> None:
    ws, peer = pair
    peer.sendall(server_frame(sync_ws.OP_CLOSE, (4001).to_bytes(2, "big") + b"bye"))
    with pytest.raises(ConnectionClosed) as err:
        ws.recv(timeout=5)
    assert err.value.code == 4001 and err.value.reason == "bye"
    assert read_client_frame(peer) == (sync_ws.OP_CLOSE, (4001).to_bytes(2, "big"))
    with pytest.raises(ConnectionClosed):
        ws.send("more")


def test_a_socket_that_just_ends_is_a_closed_connection(
    pair: tuple[SyncWebSocket, socket.socket],
) -> None:
    ws, peer = pair
    peer.close()
    with pytest.raises(ConnectionClosed) as err:
        ws.recv(timeout=5)
    assert err.value.code == 1006


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x81\x85abcdhello", 1002),  # a masked server frame
        (b"\xc1\x02hi", 1002),  # RSV1 without an extension
        (server_frame(3, b"x"), 1002),  # unknown opcode
        (server_frame(sync_ws.OP_CONT, b"x"), 1002),  # continuation of nothing
        (server_frame(sync_ws.OP_TEXT, b"\xff\xfe"), 1007),  # text that is not UTF-8
        (server_frame(sync_ws.OP_BINARY, b"x" * 2000), 1009),  # over max_size
    ],
)
def test_protocol_errors_close_with_their_code_and_raise(wire: bytes, code: int) -> None:
    a, b = socket.socketpair()
    ws = SyncWebSocket(a, max_size=1000)
    try:
        b.sendall(wire)
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=5)
        assert err.value.code == code
        assert read_client_frame(b)[0] == sync_ws.OP_CLOSE
    finally:
        ws.close_socket()
        b.close()


def test_close_sends_a_close_frame_and_never_waits_for_the_answer(
    pair: tuple[SyncWebSocket, socket.socket],
) -> None:
    ws, peer = pair
    ws.close()
    assert read_client_frame(peer) == (sync_ws.OP_CLOSE, (1000).to_bytes(2, "big"))
    ws.close()  # twice is harmless


def serve_once(answer: bytes | None) -> tuple[int, threading.Thread, list[bytes]]:
    """A TCP server that reads one request and answers ``answer`` (None: the right 101)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen: list[bytes] = []

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            req = b""
            while b"\r\n\r\n" not in req:
                req += conn.recv(4096)
            seen.append(req)
            if answer is None:
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in req.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key")
                )
                digest = hashlib.sha1(key + sync_ws.GUID.encode()).digest()
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + base64.b64encode(digest)
                    + b"\r\n\r\n"
                    + server_frame(sync_ws.OP_TEXT, b"early")
                )
                conn.recv(100)
            else:
                conn.sendall(answer)
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], t, seen


def test_handshake_sends_headers_and_keeps_bytes_that_follow_the_upgrade() -> None:
    port, t, seen = serve_once(None)
    ws = sync_ws.connect(
        f"ws://127.0.0.1:{port}/api/gateway/ws?userId=u1",
        open_timeout=5,
        additional_headers={"Authorization": "Bearer t"},
    )
    try:
        assert ws.recv(timeout=5) == "early"
    finally:
        ws.close()
    t.join(5)
    assert seen[0].startswith(b"GET /api/gateway/ws?userId=u1 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t\r\n" in seen[0]


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "HTTP 401 Unauthorized"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "Connection"),
        (
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong\r\n\r\n",
            "Sec-WebSocket-Accept",
        ),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (b"", "closed the connection"),
    ],
)
def test_a_refused_upgrade_raises_a_clear_oserror(answer: bytes, match: str) -> None:
    port, t, _ = serve_once(answer)
    with pytest.raises(HandshakeError, match=match):
        sync_ws.connect(f"ws://127.0.0.1:{port}/x", open_timeout=5)
    t.join(5)


def test_bad_urls_and_headers_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="ws://"):
        sync_ws.connect("http://127.0.0.1:1/x")
    port, t, _ = serve_once(b"")
    with pytest.raises(ValueError, match="line break"):
        sync_ws.connect(f"ws://127.0.0.1:{port}/x", additional_headers={"X": "a\r\nY: b"})
    t.join(5)


def test_closing_wakes_a_thread_blocked_reading(pair: tuple[SyncWebSocket, socket.socket]) -> None:
    ws, _peer = pair
    errors: list[BaseException] = []

    def read() -> None:
        try:
            ws.recv(timeout=30)
        except BaseException as err:
            errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    threading.Event().wait(0.1)
    ws.close()
    reader.join(5)
    assert not reader.is_alive()
    assert errors and isinstance(errors[0], ConnectionClosed)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_wss_talks_through_tls_and_checks_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.sync.server import serve

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    def echo(conn: Any) -> None:
        for message in conn:
            conn.send(message)

    with serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with pytest.raises(ssl.SSLError):  # an unknown issuer is refused
            sync_ws.connect(f"wss://127.0.0.1:{port}/", open_timeout=5)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted
        ws = sync_ws.connect(f"wss://127.0.0.1:{port}/", open_timeout=5)
        try:
            ws.send("over tls " * 5000)
            assert ws.recv(timeout=5) == "over tls " * 5000
        finally:
            ws.close()
        server.shutdown()


def test_mask_keys_are_drawn_in_blocks_and_never_repeat_a_block() -> None:
    keys = sync_ws._MaskKeys(pool_bytes=16)
    drawn = [keys.take() for _ in range(12)]
    assert all(len(k) == 4 for k in drawn)
    blocks = [b"".join(drawn[i : i + 4]) for i in range(0, 12, 4)]
    assert len(set(blocks)) == 3  # each block of 4 keys is a fresh draw
    keys.take()  # the first key of a fourth block
    keys.reset()  # as in a forked child: what was drawn is dropped
    assert b"".join(keys.take() for _ in range(4)) not in blocks
