"""Client output written at the end of the work that made it, one write per socket.

A message's pushes are made by some other socket's work: a publisher-socket frame fans a reply
out to a client, a client's publish echoes to its own subscription. Each client socket marks
itself dirty (``Flusher.mark``) when its session queues output; whoever finishes a unit of
work (one client frame, one publisher-socket frame) calls ``Flusher.flush()``, and every dirty
socket writes what its session queued, all of it in one WebSocket frame (Centrifugo's JSON
protocol: newline-separated replies and pushes), in one ``transport.write``. Output queued
anywhere else (a ping, the HTTP API, a dead letter) is flushed by a callback at the next pass
of the event loop. So a push goes out in the same pass that made it, instead of one pass later
through a writer task, and a pass's output for one client costs one write.

``text_frame`` is the one WebSocket frame a server writes: unmasked, final, text.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (RFC 6455 §5.2) holding ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    """The client sockets with output queued, and the callback that writes it if nobody did."""

    def __init__(self) -> None:
        self._dirty: dict[Flushable, None] = {}  # insertion-ordered set
        self._scheduled = False

    def mark(self, socket: Flushable) -> None:
        self._dirty[socket] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    def flush(self) -> None:
        """Every dirty socket writes what it has queued, now."""
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for socket in dirty:
                socket.flush()

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()
