"""A lean blocking WebSocket client (RFC 6455) for the load generator's sync clients.

``websockets.sync`` reads every connection in a background thread that hands each message to
the caller through a condition variable; under Locust (gevent) that is a greenlet, several lock
operations and two switches per message. Here the caller's own ``recv`` reads the socket: a
frame is parsed from one buffer filled by large ``recv`` calls, and a message is sent as one
``send`` of a header built in one step and the payload masked in C (``websockets.speedups``,
or an integer XOR without it). No extensions (no compression), text and binary messages,
fragmented messages, ping/pong and the closing handshake; ``ws://`` and ``wss://``.

The API is the subset of ``websockets.sync.client.ClientConnection`` the sync clients use:
``send``, ``recv(timeout=)`` (raises ``TimeoutError``), ``ping()`` (an event set by the pong,
seen by whoever reads next), ``close()`` and ``close_socket()``. One greenlet (or thread) reads
at a time; any may send. Control frames are answered by the reader.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
from urllib.parse import urlsplit

try:
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - websockets always ships it on CPython wheels
    _c_apply_mask = None  # type: ignore[assignment]

__all__ = ["ConnectionClosed", "HandshakeError", "SyncWebSocket", "apply_mask", "connect"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
RECV_BYTES = 64 * 1024  # one recv takes whatever is there, up to this
MAX_HEADER_BYTES = 64 * 1024
_MIN_WAIT_S = 1e-4  # a zero timeout would make the socket non-blocking for a concurrent send


class ConnectionClosed(ConnectionError):
    """The connection is closed; ``code`` and ``reason`` from the close frame, when there was
    one (1006: none, the socket just ended)."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code, self.reason = code, reason
        super().__init__(f"connection closed: {code} {reason}".rstrip())


class HandshakeError(OSError):
    """The server did not accept the WebSocket upgrade (``status`` is its HTTP status, 0 if the
    answer was not HTTP)."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class _MaskKeys:
    """Masking keys from the system's random source, drawn 4 KiB at a time: a frame's key is as
    unpredictable as ``os.urandom(4)``, without a system call per frame."""

    def __init__(self, pool_bytes: int = 4096) -> None:
        self._size = pool_bytes
        self.reset()

    def reset(self) -> None:
        """Drop what is drawn (a forked child must not reuse its parent's keys)."""
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()

    def take(self) -> bytes:
        with self._lock:
            if self._at + 4 > len(self._pool):
                self._pool, self._at = os.urandom(self._size), 0
            key = self._pool[self._at : self._at + 4]
            self._at += 4
            return key


_mask_keys = _MaskKeys()
os.register_at_fork(after_in_child=_mask_keys.reset)


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask`` repeated."""
    if _c_apply_mask is not None:
        return bytes(_c_apply_mask(data, mask))
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame_header(opcode: int, length: int, mask: bytes) -> bytes:
    """FIN set, no RSV bits, masked (a client's frames always are)."""
    if length < 126:
        return struct.pack("!BB4s", 0x80 | opcode, 0x80 | length, mask)
    if length < 65536:
        return struct.pack("!BBH4s", 0x80 | opcode, 0xFE, length, mask)
    return struct.pack("!BBQ4s", 0x80 | opcode, 0xFF, length, mask)


def connect(
    url: str,
    *,
    open_timeout: float = 10.0,
    max_size: int = 16 * 1024 * 1024,
    additional_headers: dict[str, str] | None = None,
) -> SyncWebSocket:
    """Open ``ws://`` or ``wss://`` ``url``; raise ``OSError`` (``HandshakeError`` when the
    server answers but refuses) with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"WebSocket URL must be ws:// or wss:// with a host, got {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=open_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        host = parts.netloc.rsplit("@", 1)[-1]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            "User-Agent: travelagent",
        ]
        for name, value in (additional_headers or {}).items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head, rest = _read_head(sock)
        _check_upgrade(head, key)
    except BaseException:
        sock.close()
        raise
    return SyncWebSocket(sock, rest, max_size=max_size)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER_BYTES:
            raise HandshakeError("the server's upgrade answer is too long")
        chunk = sock.recv(4096)
        if not chunk:
            raise HandshakeError("the server closed the connection during the upgrade")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _check_upgrade(head: bytes, key: str) -> None:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise HandshakeError(f"not an HTTP answer to the upgrade: {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HandshakeError(f"bad HTTP status line: {lines[0][:80]!r}") from None
    if status != 101:
        reason = status_line[2] if len(status_line) > 2 else ""
        raise HandshakeError(
            f"server rejected WebSocket connection: HTTP {status} {reason}".rstrip(), status
        )
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("the upgrade answer lacks 'Upgrade: websocket'", status)
    if "upgrade" not in headers.get("connection", "").lower():
        raise HandshakeError("the upgrade answer lacks 'Connection: Upgrade'", status)
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise HandshakeError("the upgrade answer has a wrong Sec-WebSocket-Accept", status)
    if headers.get("sec-websocket-extensions"):
        raise HandshakeError("the server chose an extension that was not offered", status)


class SyncWebSocket:
    """One client connection (see the module docstring)."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"", *, max_size: int) -> None:
        self.sock = sock
        self.max_size = max_size
        self._buf = bytearray(buffered)
        self._send_lock = threading.Lock()
        self._pings: dict[bytes, threading.Event] = {}
        self._parts: list[bytes] = []  # a fragmented message so far
        self._parts_op = 0
        self._parts_len = 0
        self._closed: ConnectionClosed | None = None  # set once closed, raised by recv/send
        self._close_sent = False
        self._timeout: float | None = -1.0  # what the socket was last set to

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._send_frame(OP_TEXT, message.encode())
        else:
            self._send_frame(OP_BINARY, bytes(message))

    def ping(self, data: bytes | None = None) -> threading.Event:
        """Send a ping; the event is set when its pong is read (by ``recv``)."""
        payload = os.urandom(4) if data is None else data
        event = threading.Event()
        self._pings[payload] = event
        self._send_frame(OP_PING, payload)
        return event

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self._closed is not None:
            raise self._closed
        mask = _mask_keys.take()
        data = frame_header(opcode, len(payload), mask) + apply_mask(payload, mask)
        with self._send_lock:
            self._send_all(data)

    def _send_all(self, data: bytes, *, patient: bool = True) -> None:
        # The socket's timeout belongs to the reader (``recv(timeout=)``): a send that times out
        # has sent nothing, so it is tried again (``patient``) and a frame is never cut.
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except TimeoutError:
                if self._closed is not None:
                    raise self._closed from None
                if not patient:
                    raise
                continue
            view = view[n:]

    # -- receiving ----------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message (str for text, bytes for binary); ``TimeoutError`` if none within
        ``timeout`` seconds (None: wait as long as it takes); ``ConnectionClosed`` once closed."""
        while True:
            msg = self._next_message()
            if msg is not None:
                return msg
            self._fill(timeout)

    def _fill(self, timeout: float | None) -> None:
        if self._closed is not None:
            raise self._closed
        wait = None if timeout is None else max(timeout, _MIN_WAIT_S)
        if wait != self._timeout:
            self.sock.settimeout(wait)
            self._timeout = wait
        try:
            chunk = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            raise
        except OSError as err:
            self._abort(1006, f"{err}")
            raise self._closed from None  # type: ignore[misc]
        if not chunk:
            self._abort(1006, "the peer closed the socket without a close frame")
            raise self._closed  # type: ignore[misc]
        if self._buf:
            self._buf += chunk
        else:
            self._buf = bytearray(chunk)

    def _next_message(self) -> str | bytes | None:
        """Take whole frames from the buffer until a message is complete; None if more bytes
        are needed."""
        buf = self._buf
        while True:
            n = len(buf)
            if n < 2:
                return None
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if n < 4:
                    return None
                length = (buf[2] << 8) | buf[3]
                pos = 4
            elif length == 127:
                if n < 10:
                    return None
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            if b1 & 0x80:
                self._fail(1002, "the server masked a frame")
            if b0 & 0x70:
                self._fail(1002, "reserved bits set without an extension")
            opcode = b0 & 0x0F
            if length > self.max_size or self._parts_len + length > self.max_size:
                self._fail(1009, f"message over {self.max_size} bytes")
            end = pos + length
            if n < end:
                return None
            payload = bytes(buf[pos:end])
            del buf[:end]
            fin = b0 & 0x80
            if opcode >= 8:
                if not fin or length > 125:
                    self._fail(1002, "bad control frame")
                self._control(opcode, payload)
                continue
            if opcode == OP_CONT:
                if not self._parts_op:
                    self._fail(1002, "continuation without a message")
                self._parts.append(payload)
                self._parts_len += length
                if not fin:
                    continue
                opcode, payload = self._parts_op, b"".join(self._parts)
                self._parts, self._parts_op, self._parts_len = [], 0, 0
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._parts_op:
                    self._fail(1002, "a new message inside a fragmented one")
                if not fin:
                    self._parts, self._parts_op, self._parts_len = [payload], opcode, length
                    continue
            else:
                self._fail(1002, f"unknown opcode {opcode}")
            if opcode == OP_BINARY:
                return payload
            try:
                return payload.decode()
            except UnicodeDecodeError:
                self._fail(1007, "a text message that is not UTF-8")

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            if self._closed is None and not self._close_sent:
                self._send_frame(OP_PONG, payload)
        elif opcode == OP_PONG:
            event = self._pings.pop(payload, None)
            if event is not None:
                event.set()
        elif opcode == OP_CLOSE:
            code, reason = 1005, ""
            if len(payload) >= 2:
                code = int.from_bytes(payload[:2], "big")
                reason = payload[2:].decode(errors="replace")
            if not self._close_sent:
                self._send_close(code if code != 1005 else 1000)
            self._abort(code, reason)
            raise self._closed  # type: ignore[misc]

    def _fail(self, code: int, reason: str) -> None:
        """A protocol error from the server: close with ``code`` and raise."""
        self._send_close(code, reason)
        self._abort(code, reason)
        raise self._closed  # type: ignore[misc]

    # -- closing ------------------------------------------------------------------------------

    def _send_close(self, code: int, reason: str = "") -> None:
        if self._close_sent:
            return
        self._close_sent = True
        payload = code.to_bytes(2, "big") + reason.encode()[:123]
        mask = _mask_keys.take()
        try:
            frame = frame_header(OP_CLOSE, len(payload), mask) + apply_mask(payload, mask)
            # A sender stuck on a silent peer holds the lock: the close frame is then skipped.
            if self._send_lock.acquire(timeout=1.0):
                try:
                    self._send_all(frame, patient=False)
                finally:
                    self._send_lock.release()
        except OSError:
            pass

    def _abort(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        self.close_socket()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the socket (the peer's answer is not awaited: a load
        user that is stopping must not wait on a slow or silent server)."""
        if self._closed is None:
            self._send_close(code, reason)
            self._closed = ConnectionClosed(code, reason)
        self.close_socket()

    def close_socket(self) -> None:
        """Close the TCP socket at once, no closing handshake."""
        if self._closed is None:
            self._closed = ConnectionClosed(1006, "socket closed")
        try:  # shutdown first: a thread blocked reading it wakes now, not at its timeout
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        state = "closed" if self._closed is not None else "open"
        return f"<SyncWebSocket {state} fd={self.sock.fileno()}>"
