"""Sockets that know when their bytes arrived: the kernel's receive time, not the read's.

A link schedules each chunk from its arrival. Stamped when the proxy's event loop gets round to
reading it, a chunk's arrival is late by the proxy's own wake-up (tens of microseconds on an
idle machine, milliseconds when the process waits for a CPU), and every delayed chunk is then
delivered that much late. With ``SO_TIMESTAMPNS`` (Linux) the kernel stamps each packet as it
reaches the socket; on loopback that is within microseconds of the sender's ``send``. A
``StampedSocket`` reads with ``recvmsg`` and keeps that stamp, on the monotonic clock, for the
bytes its last ``recv`` returned (``rx_ns``); asyncio's transports call ``recv``, so they need
no change. Where the kernel gives no stamp the read's own time is used, as before.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

# SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD on 64-bit Linux: a struct timespec of two longs).
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
# A stamp further back than this is not believed (the wall clock stepped between the kernel's
# stamp and the read): the read's own time is used instead.
MAX_BACKDATE_NS = 1_000_000_000


def wire_ns(ancdata: list[tuple[int, int, bytes]], now_ns: int, mono_to_wall_ns: int) -> int:
    """The monotonic time of a kernel receive stamp in ``ancdata``; ``now_ns`` without one.

    The stamp is on the wall clock (``CLOCK_REALTIME``); ``mono_to_wall_ns`` is the offset
    between the two clocks read at ``now_ns``. Never later than ``now_ns``, never earlier than
    ``MAX_BACKDATE_NS`` before it."""
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(raw)
            stamp = sec * 1_000_000_000 + nsec - mono_to_wall_ns
            if now_ns - MAX_BACKDATE_NS <= stamp <= now_ns:
                return stamp
            return now_ns
    return now_ns


class StampedSocket(socket.socket):
    """A TCP socket whose ``recv`` also records the kernel's receive time (``rx_ns``)."""

    __slots__ = ("rx_ns", "stamped")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rx_ns = 0
        self.stamped = False
        if _ANC_SPACE:
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.stamped = True
            except OSError:
                pass  # no kernel stamps here: the read's own time is used

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self.stamped:
            data = super().recv(bufsize, flags)
            self.rx_ns = time.monotonic_ns()
            return data
        data, ancdata, _flags, _addr = self.recvmsg(bufsize, _ANC_SPACE, flags)
        now = time.monotonic_ns()
        self.rx_ns = wire_ns(ancdata, now, time.time_ns() - now) if ancdata else now
        return data


class StampedListener(socket.socket):
    """A listening socket whose accepted connections are ``StampedSocket``s.

    asyncio wraps an accepted socket before the protocol sees it; ``claim(fd)`` hands the
    protocol the socket itself (by its file descriptor), once."""

    __slots__ = ("_accepted",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted: dict[int, StampedSocket] = {}

    def accept(self) -> tuple[socket.socket, Any]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        conn = StampedSocket(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)
        self._accepted[fd] = conn  # a later socket on a reused fd replaces an unclaimed one
        return conn, addr

    def claim(self, fd: int) -> StampedSocket | None:
        return self._accepted.pop(fd, None)


def listener(host: str, port: int, backlog: int = 100) -> StampedListener | None:
    """A non-blocking listening socket on ``host:port``; None when ``host`` names more than one
    address (``localhost`` on a dual-stack host): asyncio's own server then listens on every
    one of them, as before, and those accepted connections go without kernel stamps."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if len({info[4] for info in infos}) != 1:
        return None
    family, kind, proto, _, addr = infos[0]
    sock = StampedListener(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
