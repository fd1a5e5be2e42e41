"""The shaped TCP link: an asyncio proxy from a listen address to an upstream.

Thin I/O over ``schedule.py``: each chunk read from one side is stamped with its arrival time,
given a delivery time by that direction's ``DirectionSchedule``, queued in a FIFO and written to
the other side when its time comes (``timer.py`` wakes the loop). Closes (FIN) travel through
the same FIFO, so they are delayed like data and never overtake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from travelagent.link.faults import BLACKHOLE_MAX_HELD_BYTES, BLACKHOLE_RTO_MAX_MS, Faults
from travelagent.link.schedule import DirectionSchedule, JitterSampler, LinkShape
from travelagent.link.timer import Timer, best_timer, mono_ns
from travelagent.monitor import summary_ms

DIRECTIONS = ("up", "down")  # up: client -> upstream, down: upstream -> client
MAX_QUEUED_BYTES = 4 * 1024 * 1024  # stop reading a side whose bytes are not being delivered
MAX_RECORDS = 200_000
_EOF = b""  # FIFO marker for a close passed on with the data


LATENESS_KEPT = 20_000  # the most recent chunks whose lateness a link's stats describe


@dataclass
class DirectionStats:
    bytes: int = 0
    chunks: int = 0
    held_bytes: int = 0  # read during a black hole and held for delivery after it
    dropped_bytes: int = 0  # held, then discarded because the connection was reset
    # How late each chunk was written against its scheduled delivery (ns; early counts as 0):
    # the link's own error, which the self-check of a run bounds.
    late_ns: deque[int] = field(default_factory=lambda: deque(maxlen=LATENESS_KEPT))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "chunks": self.chunks,
            "held_bytes": self.held_bytes,
            "dropped_bytes": self.dropped_bytes,
            "late": summary_ms(self.late_ns),
        }


@dataclass
class LinkStats:
    connections: int = 0
    open_connections: int = 0
    resets: int = 0
    upstream_failures: int = 0
    # connections reset by a black hole: too much held, or the hole outlasted the give-up time
    blackhole_resets: int = 0
    directions: dict[str, DirectionStats] = field(
        default_factory=lambda: {d: DirectionStats() for d in DIRECTIONS}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "open_connections": self.open_connections,
            "resets": self.resets,
            "upstream_failures": self.upstream_failures,
            "blackhole_resets": self.blackhole_resets,
            **{d: s.to_dict() for d, s in self.directions.items()},
        }


@dataclass(frozen=True)
class ChunkRecord:
    """One delivered chunk, for checking the shaping: monotonic ns."""

    direction: str
    arrival_ns: int
    scheduled_ns: int
    delivered_ns: int
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "arrival_ns": self.arrival_ns,
            "scheduled_ns": self.scheduled_ns,
            "delivered_ns": self.delivered_ns,
            "nbytes": self.nbytes,
        }


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees 'connection reset', not a clean close."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert isinstance(transport, asyncio.Transport)
    transport.abort()


class _Direction:
    """FIFO of (deliver_at, bytes) from one side to the other."""

    def __init__(self, conn: _Connection, name: str, schedule: DirectionSchedule) -> None:
        self.conn = conn
        self.name = name
        self.schedule = schedule
        self.fifo: deque[tuple[int, bytes, int]] = deque()
        self.queued_bytes = 0
        self.armed = False
        self.eof_queued = False
        self.done = False  # EOF passed on
        # Reading from the source stops while too much is queued here or while the
        # destination's own write buffer is full; it resumes when neither holds.
        self.queue_full = False
        self.dest_full = False

    @property
    def dest(self) -> asyncio.Transport | None:
        return self.conn.upstream if self.name == "up" else self.conn.client

    @property
    def source(self) -> asyncio.Transport | None:
        return self.conn.client if self.name == "up" else self.conn.upstream

    def push(self, data: bytes, arrival_ns: int) -> None:
        deliver_ns = self.schedule.deliver_at(arrival_ns, len(data))
        self.fifo.append((deliver_ns, data, arrival_ns))
        self.queued_bytes += len(data)
        if self.queued_bytes > MAX_QUEUED_BYTES and not self.queue_full:
            self.queue_full = True
            self._update_reading()
        if (
            not self.armed
            and len(self.fifo) == 1
            and deliver_ns <= mono_ns() + self.conn.link.timer.lead_ns
        ):
            # Due already (no delay configured, or it passed while the chunk was read) and
            # nothing queued before it: written now, without a timer wake-up in between.
            self.flush()
        else:
            self._arm()

    def set_dest_full(self, full: bool) -> None:
        self.dest_full = full
        self._update_reading()

    def _update_reading(self) -> None:
        source = self.source
        if source is None or source.is_closing():
            return
        if self.queue_full or self.dest_full:
            source.pause_reading()
        else:
            source.resume_reading()

    def push_eof(self, arrival_ns: int, extra_ns: int) -> None:
        if self.eof_queued:
            return
        self.eof_queued = True
        deliver_ns = self.schedule.deliver_at(arrival_ns, 0) + extra_ns
        self.fifo.append((deliver_ns, _EOF, arrival_ns))
        self._arm()

    def _arm(self) -> None:
        if not self.armed and self.fifo:
            self.armed = True
            # Asked for a little early (the timer's own wake-up cost), so the write is on time.
            timer = self.conn.link.timer
            timer.call_at_ns(self.fifo[0][0] - timer.lead_ns, self.flush)

    def flush(self) -> None:
        self.armed = False
        dest = self.dest
        if self.conn.closed or dest is None:
            return  # upstream not connected yet: flushed again on connect
        if self.conn.link.faults.blackhole:
            return  # nothing is delivered while the hole lasts: flushed again when it lifts
        now = mono_ns()
        link = self.conn.link
        due_ns = now + link.timer.lead_ns  # what is due within the wake-up cost goes now
        late = link.stats.directions[self.name].late_ns
        while self.fifo and self.fifo[0][0] <= due_ns:
            deliver_ns, data, arrival_ns = self.fifo.popleft()
            if data is _EOF:
                self.done = True
                try:
                    if dest.can_write_eof():
                        dest.write_eof()
                except OSError:
                    # The destination went away meanwhile (ENOTCONN): pass that on as a reset.
                    self.conn.reset()
                    return
                self.conn.maybe_close()
                continue
            dest.write(data)
            self.queued_bytes -= len(data)
            late.append(now - deliver_ns if now > deliver_ns else 0)
            if link.recording:
                link.record(ChunkRecord(self.name, arrival_ns, deliver_ns, now, len(data)))
        if self.queue_full and self.queued_bytes <= MAX_QUEUED_BYTES // 4:
            self.queue_full = False
            self._update_reading()
        self._arm()


class _Side(asyncio.Protocol):
    def __init__(self, conn: _Connection, direction: str) -> None:
        self.conn = conn
        self.direction = direction  # the direction this side's bytes travel in

    def data_received(self, data: bytes) -> None:
        self.conn.on_data(self.direction, data, mono_ns())

    def eof_received(self) -> bool:
        self.conn.on_eof(self.direction, mono_ns())
        return True  # keep the other half open until our close has been delivered

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.on_lost(self.direction, exc)

    # This side's transport is the destination of the other direction.
    def pause_writing(self) -> None:
        self.conn.dirs[_other(self.direction)].set_dest_full(True)

    def resume_writing(self) -> None:
        self.conn.dirs[_other(self.direction)].set_dest_full(False)


def release_delay_ns(held_since_ns: int, now_ns: int, rto_ms: float) -> int:
    """How long after ``now_ns`` (a black hole's lift) a sender whose first unacknowledged
    bytes date from ``held_since_ns`` retransmits them: TCP's backoff, retransmissions at
    ``rto``, ``3 rto``, ``7 rto``, ... after the first send (each wait doubling, capped at
    ``BLACKHOLE_RTO_MAX_MS``). 0 with ``rto_ms`` 0."""
    if rto_ms <= 0:
        return 0
    wait_ns = int(rto_ms * 1_000_000)
    cap_ns = int(BLACKHOLE_RTO_MAX_MS * 1_000_000)
    at_ns = held_since_ns + wait_ns
    while at_ns < now_ns:
        wait_ns = min(wait_ns * 2, cap_ns)
        at_ns += wait_ns
    return at_ns - now_ns


def _other(direction: str) -> str:
    return "down" if direction == "up" else "up"


class _Connection:
    def __init__(self, link: Link, client: asyncio.Transport, opened_ns: int) -> None:
        self.link = link
        self.client: asyncio.Transport | None = client
        self.upstream: asyncio.Transport | None = None
        self.connecting = False
        self.closed = False
        # Black hole: what was read and not yet delivered, in arrival order, per direction
        # (bytes, or _EOF for a close), since when, and whether a release is under way.
        self.held: list[tuple[str, bytes, int]] = []
        self.held_nbytes = 0
        self.held_since_ns = 0
        self.releasing = False
        self.dirs = {
            d: _Direction(self, d, DirectionSchedule(link.shape, opened_ns, link.sampler))
            for d in DIRECTIONS
        }

    @property
    def holding(self) -> bool:
        """Bytes read now are held: the hole is on, or held bytes are still to be released
        (which later bytes must not overtake)."""
        return self.link.faults.blackhole or self.releasing

    def hold(self, direction: str, data: bytes, arrival_ns: int) -> None:
        if not self.held:
            self.held_since_ns = arrival_ns
            giveup_s = self.link.faults.blackhole_giveup_ms / 1000
            since = arrival_ns
            asyncio.get_running_loop().call_later(giveup_s, self._give_up, since)
        self.held.append((direction, data, arrival_ns))
        self.held_nbytes += len(data)
        self.link.stats.directions[direction].held_bytes += len(data)
        if self.held_nbytes > BLACKHOLE_MAX_HELD_BYTES:
            self._blackhole_reset()

    def _give_up(self, since_ns: int) -> None:
        # The sender retransmitted for the whole give-up time and heard nothing back.
        if not self.closed and self.held and self.held_since_ns == since_ns and self.holding:
            self._blackhole_reset()

    def _blackhole_reset(self) -> None:
        self.link.stats.blackhole_resets += 1
        self.reset()

    def release_held(self) -> None:
        """Deliver what the hole held, in order, as if it had arrived now."""
        self.releasing = False
        if self.closed:
            return
        held, self.held, self.held_nbytes = self.held, [], 0
        now = mono_ns()
        for direction, data, _arrival_ns in held:
            if data is _EOF:
                self.on_eof(direction, now)
            else:
                self.on_data(direction, data, now)

    def on_data(self, direction: str, data: bytes, arrival_ns: int) -> None:
        if self.holding:
            self.hold(direction, data, arrival_ns)
            return
        stats = self.link.stats.directions[direction]
        stats.bytes += len(data)
        stats.chunks += 1
        self.dirs[direction].push(data, arrival_ns)

    def on_eof(self, direction: str, arrival_ns: int) -> None:
        if self.holding:
            self.held.append((direction, _EOF, arrival_ns))
            return
        extra_ns = int(self.link.faults.slow_close_ms * 1_000_000)
        self.dirs[direction].push_eof(arrival_ns, extra_ns)

    def on_lost(self, direction: str, exc: Exception | None) -> None:
        if self.closed:
            return
        if exc is not None or not self.dirs[direction].eof_queued:
            # The peer vanished without a clean close (reset, error): pass the reset on.
            self.reset()
            return
        self.maybe_close()

    def upstream_connected(self, transport: asyncio.Transport) -> None:
        self.upstream = transport
        self.dirs["up"].flush()

    def maybe_close(self) -> None:
        if all(d.done for d in self.dirs.values()):
            self.close()

    def _discard_held(self) -> None:
        for direction, data, _ in self.held:
            self.link.stats.directions[direction].dropped_bytes += len(data)
        self.held, self.held_nbytes = [], 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._discard_held()
        for transport in (self.client, self.upstream):
            if transport is not None and not transport.is_closing():
                transport.close()
        self.link.forget(self)

    def reset(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._discard_held()
        _reset(self.client)
        _reset(self.upstream)
        self.link.forget(self)

    def set_shape(self, shape: LinkShape) -> None:
        for d in self.dirs.values():
            d.schedule.set_shape(shape)


class Link:
    """One shaped link. ``await link.start()``; ``await link.stop()``."""

    def __init__(
        self,
        name: str,
        *,
        listen_host: str,
        listen_port: int,
        upstream_host: str,
        upstream_port: int,
        shape: LinkShape,
        seed: int | None = None,
        timer: Timer | None = None,
        recording: bool = False,
    ) -> None:
        self.name = name
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.shape = shape
        self.sampler = JitterSampler(seed)
        self.faults = Faults()
        self.stats = LinkStats()
        self.recording = recording
        self.records: list[ChunkRecord] = []
        self._timer = timer
        self._own_timer = timer is None
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def timer(self) -> Timer:
        assert self._timer is not None, "link not started"
        return self._timer

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = best_timer(loop)
        await self._listen()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, self.listen_host, self.listen_port, reuse_address=True
        )
        if self.listen_port == 0:
            self.listen_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        # Transports close their sockets on the next loop iterations: let them, so stop()
        # leaves no socket open even if the loop is closed right after.
        for _ in range(2):
            await asyncio.sleep(0)
        if self._own_timer and self._timer is not None:
            self._timer.close()
            self._timer = None

    def _accept(self) -> asyncio.Protocol:
        # Called by the server for each new connection; the transport arrives in connection_made.
        return _Accepted(self)

    def _opened(self, client: asyncio.Transport) -> _Connection:
        conn = _Connection(self, client, mono_ns())
        self.stats.connections += 1
        self.stats.open_connections += 1
        self._conns.add(conn)
        if self.faults.reset:
            self.stats.resets += 1
            conn.reset()
            return conn
        if not self.faults.blackhole:  # else connected when the blackhole is lifted
            self._start_upstream(conn)
        return conn

    def _start_upstream(self, conn: _Connection) -> None:
        conn.connecting = True
        task = asyncio.get_running_loop().create_task(self._connect_upstream(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_upstream(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(
                lambda: _Side(conn, "down"), self.upstream_host, self.upstream_port
            )
        except OSError:
            self.stats.upstream_failures += 1
            conn.reset()
            return
        if conn.closed:
            transport.close()
            return
        assert isinstance(transport, asyncio.Transport)
        conn.upstream_connected(transport)

    def forget(self, conn: _Connection) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self.stats.open_connections -= 1

    def record(self, rec: ChunkRecord) -> None:
        if len(self.records) < MAX_RECORDS:
            self.records.append(rec)

    # -- run-time control ------------------------------------------------------------------

    async def set_faults(self, faults: Faults) -> None:
        before = self.faults
        self.faults = faults
        if faults.reset and not before.reset:
            for conn in list(self._conns):
                self.stats.resets += 1
                conn.reset()
        if before.blackhole and not faults.blackhole:
            now = mono_ns()
            loop = asyncio.get_running_loop()
            for conn in list(self._conns):
                if conn.closed:
                    continue
                for direction in conn.dirs.values():
                    direction.flush()  # what was queued before the hole
                if not conn.connecting:
                    self._start_upstream(conn)
                if conn.held:
                    # Held bytes go at the sender's next retransmission after the lift.
                    conn.releasing = True
                    delay_ns = release_delay_ns(conn.held_since_ns, now, before.blackhole_rto_ms)
                    loop.call_later(delay_ns / 1e9, conn.release_held)
        if faults.refuse and self._server is not None:
            self._server.close()  # stop listening: connects now get ECONNREFUSED
            await self._server.wait_closed()
            self._server = None
        elif not faults.refuse and self._server is None and self._timer is not None:
            await self._listen()

    def set_shape(self, shape: LinkShape) -> None:
        self.shape = shape
        for conn in self._conns:
            conn.set_shape(shape)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": f"{self.listen_host}:{self.listen_port}",
            "upstream": f"{self.upstream_host}:{self.upstream_port}",
            "shape": self.shape.to_dict(),
            "faults": self.faults.to_dict(),
            "stats": self.stats.to_dict(),
            "recording": self.recording,
            "records": len(self.records),
        }


class _Accepted(_Side):
    """The client side of a new connection; builds the connection when the transport arrives."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.direction = "up"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn = self.link._opened(transport)
