from __future__ import annotations

import socket
import struct
import time

import pytest

from travelagent.link.sockets import (
    MAX_BACKDATE_NS,
    SO_TIMESTAMPNS,
    StampedListener,
    StampedSocket,
    listener,
    wire_ns,
)

SEC = 1_000_000_000


def _stamp(wall_ns: int) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@ll", *divmod(wall_ns, SEC)))]


def test_wire_ns_turns_a_wall_clock_stamp_into_monotonic_time() -> None:
    offset = 1_700_000_000 * SEC  # wall minus monotonic
    now = 5_000 * SEC
    assert wire_ns(_stamp(now - 70_000 + offset), now, offset) == now - 70_000


def test_wire_ns_falls_back_to_the_read_time_without_a_believable_stamp() -> None:
    offset = 1_700_000_000 * SEC
    now = 5_000 * SEC
    assert wire_ns([], now, offset) == now
    assert wire_ns([(socket.SOL_SOCKET, 999, b"x" * 16)], now, offset) == now  # not a stamp
    assert wire_ns(_stamp(now + 1_000 + offset), now, offset) == now  # from the future
    too_old = now - MAX_BACKDATE_NS - 1 + offset  # the wall clock stepped
    assert wire_ns(_stamp(too_old), now, offset) == now


@pytest.mark.skipif(not hasattr(socket, "CMSG_SPACE"), reason="no ancillary data here")
def test_an_accepted_socket_knows_when_its_bytes_arrived() -> None:
    lst = listener("127.0.0.1", 0)
    assert isinstance(lst, StampedListener)
    lst.setblocking(True)
    client = socket.create_connection(lst.getsockname())
    try:
        conn, _ = lst.accept()
        assert isinstance(conn, StampedSocket)
        assert lst.claim(conn.fileno()) is conn
        assert lst.claim(conn.fileno()) is None  # once
        sent = time.monotonic_ns()
        client.sendall(b"hello")
        time.sleep(0.05)  # read 50 ms after the bytes arrived
        before_read = time.monotonic_ns()
        assert conn.recv(100) == b"hello"
        if conn.stamped:
            assert sent <= conn.rx_ns < before_read
        else:
            assert conn.rx_ns >= before_read
        client.close()
        assert conn.recv(100) == b""  # end of stream as from a plain socket
        conn.close()
    finally:
        client.close()
        lst.close()


def test_a_name_with_several_addresses_gets_no_stamped_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: both)
    assert listener("localhost", 0) is None  # the proxy then listens on both, unstamped
