from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from travelagent.link.faults import BLACKHOLE_MAX_HELD_BYTES, Faults
from travelagent.link.proxy import Link, release_delay_ns
from travelagent.link.schedule import LinkShape

MS = 1_000_000


@dataclass
class Upstream:
    """A line echo server that remembers what happened to each connection."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)
    recv_times: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    eof_at: list[float] = field(default_factory=list)
    connections: int = 0
    got_data: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.eof_at.append(time.monotonic())
                    break
                self.received.append(data)
                self.recv_times.append(time.monotonic())
                self.got_data.set()
                writer.write(data)
                await writer.drain()
        except ConnectionError as err:
            self.errors.append(err)
        finally:
            self.ended.set()
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    yield up
    server.close()
    await server.wait_closed()


@pytest.fixture
async def make_link(upstream: Upstream) -> AsyncIterator:
    links: list[Link] = []

    async def make(**shape: float | str) -> Link:
        link = Link(
            "test",
            listen_host="127.0.0.1",
            listen_port=0,
            upstream_host="127.0.0.1",
            upstream_port=upstream.port,
            shape=LinkShape(**shape),  # type: ignore[arg-type]
            seed=1,
            recording=True,
        )
        await link.start()
        links.append(link)
        return link

    yield make
    for link in links:
        await link.stop()


async def roundtrip(reader: Any, writer: Any, data: bytes, timeout_s: float) -> float:
    t0 = time.monotonic()
    writer.write(data)
    got = await asyncio.wait_for(reader.readexactly(len(data)), timeout_s)
    assert got == data
    return time.monotonic() - t0


async def test_bytes_cross_the_link_both_ways_after_the_configured_delay(
    make_link: Any, tf: float
) -> None:
    link = await make_link(delay_ms=20, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    rtt_s = await roundtrip(reader, writer, b"hello", 5 * tf)
    assert rtt_s >= 0.040 - 0.002  # 20 ms each way
    writer.close()
    ups = [r for r in link.records if r.direction == "up"]
    assert ups and all(r.scheduled_ns - r.arrival_ns == 20 * MS for r in ups)
    assert all(r.delivered_ns >= r.scheduled_ns - 200_000 for r in link.records)


async def test_setup_cost_is_paid_once_per_connection(make_link: Any, tf: float) -> None:
    link = await make_link(delay_ms=15, setup_rtts=1)  # RTT 30 ms
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"a", 5 * tf)
    assert time.monotonic() - t0 >= 0.060 - 0.002  # handshake 30 + 2 x 15
    await roundtrip(reader, writer, b"b", 5 * tf)
    up = [r for r in link.records if r.direction == "up"]
    assert up[0].scheduled_ns - up[0].arrival_ns > 15 * MS  # held for the handshake
    assert up[1].scheduled_ns - up[1].arrival_ns == 15 * MS  # warm connection: delay only
    writer.close()
    # A second connection pays again.
    t1 = time.monotonic()
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader2, writer2, b"c", 5 * tf)
    assert time.monotonic() - t1 >= 0.060 - 0.002
    up = [r for r in link.records if r.direction == "up"]
    assert up[2].scheduled_ns - up[2].arrival_ns > 15 * MS
    writer2.close()


async def test_burst_does_not_accumulate_delay(make_link: Any, upstream: Any, tf: float) -> None:
    link = await make_link(delay_ms=30, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    for i in range(20):
        writer.write(b"%03d" % i)
        await writer.drain()
        await asyncio.sleep(0)
    await asyncio.wait_for(reader.readexactly(60), 5 * tf)
    up = [r for r in link.records if r.direction == "up"]
    assert all(r.scheduled_ns - r.arrival_ns == 30 * MS for r in up)
    spread_s = upstream.recv_times[-1] - upstream.recv_times[0]
    assert spread_s < 0.3  # arrived together (within noise), not 20 x 30 ms = 0.6 s apart
    writer.close()


async def test_order_holds_under_jitter_over_real_sockets(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=5, jitter_ms=10, jitter="uniform", setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    expected = b"".join(b"%04d," % i for i in range(300))
    for i in range(300):
        writer.write(b"%04d," % i)
        if i % 10 == 0:
            await asyncio.sleep(0.001)
    echoed = await asyncio.wait_for(reader.readexactly(len(expected)), 10 * tf)
    assert b"".join(upstream.received) == expected
    assert echoed == expected
    writer.close()


async def test_bandwidth_paces_a_large_write(make_link: Any, upstream: Any, tf: float) -> None:
    link = await make_link(delay_ms=0, setup_rtts=0, bandwidth_kbps=800)  # 100 kB/s
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    t0 = time.monotonic()
    writer.write(b"x" * 20_000)  # 0.2 s on the wire
    await asyncio.wait_for(reader.readexactly(20_000), 10 * tf)
    assert time.monotonic() - t0 >= 0.2 - 0.005
    writer.close()


async def test_counters_count_connections_bytes_and_chunks_per_direction(
    make_link: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
        await roundtrip(reader, writer, b"12345", 5 * tf)
        writer.close()
        await writer.wait_closed()
    stats = link.snapshot()["stats"]
    assert stats["connections"] == 2
    assert stats["up"]["bytes"] == 10 and stats["down"]["bytes"] == 10
    assert stats["up"]["chunks"] >= 2 and stats["down"]["chunks"] >= 2


async def test_refuse_makes_new_connections_fail_and_clear_restores_them(
    make_link: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    await link.set_faults(Faults(refuse=True))
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", link.listen_port)
    await link.set_faults(Faults())
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"back", 5 * tf)
    writer.close()


async def test_reset_resets_both_peers(make_link: Any, upstream: Any, tf: float) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"hi", 5 * tf)
    await link.set_faults(Faults(reset=True))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 5 * tf)
    await asyncio.wait_for(upstream.ended.wait(), 5 * tf)
    assert any(isinstance(e, ConnectionResetError) for e in upstream.errors)
    assert link.stats.resets == 1
    # While on, a new connection is reset as soon as it is accepted.
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", link.listen_port)
    with pytest.raises(ConnectionResetError):
        writer2.write(b"x")
        await asyncio.wait_for(reader2.read(10), 5 * tf)
    writer.close()
    writer2.close()


async def wait_until(cond: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_blackhole_holds_bytes_and_delivers_them_when_it_lifts(
    make_link: Any, upstream: Any, tf: float
) -> None:
    # A partition under TCP: nothing arrives while it lasts, nothing is lost when it ends.
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"before", 5 * tf)
    await link.set_faults(Faults(blackhole=True, blackhole_rto_ms=0))
    writer.write(b"into the hole")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(1), 0.3)
    assert b"".join(upstream.received) == b"before"
    assert link.stats.directions["up"].held_bytes == len(b"into the hole")
    await link.set_faults(Faults())
    got = await asyncio.wait_for(reader.readexactly(len(b"into the hole")), 5 * tf)
    assert got == b"into the hole"
    assert b"".join(upstream.received) == b"beforeinto the hole"
    assert link.stats.directions["up"].dropped_bytes == 0
    assert link.stats.blackhole_resets == 0
    writer.close()


async def test_blackhole_holds_the_other_direction_and_closes_too(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    writer.write(b"ping")
    await link.set_faults(Faults(blackhole=True, blackhole_rto_ms=0))
    # The echo may or may not have crossed before the hole: whatever did not is held.
    writer.write_eof()
    await asyncio.sleep(0.2)
    assert not upstream.eof_at  # the close is held like the data
    await link.set_faults(Faults())
    assert await asyncio.wait_for(reader.read(), 5 * tf) == b"ping"
    await asyncio.wait_for(upstream.ended.wait(), 5 * tf)
    assert upstream.eof_at and b"".join(upstream.received) == b"ping"
    writer.close()


def test_release_follows_tcp_retransmission_backoff() -> None:
    # Retransmissions at 200, 600, 1400, 3000 ms after the first send.
    assert release_delay_ns(0, 100 * MS, 200) == 100 * MS
    assert release_delay_ns(0, 1_500 * MS, 200) == 1_500 * MS
    assert release_delay_ns(0, 600 * MS, 200) == 0
    assert release_delay_ns(0, 5 * MS, 0) == 0
    # capped at TCP_RTO_MAX (120 s) per wait
    far = release_delay_ns(0, 10_000_000 * MS, 200)
    assert 0 <= far <= 120_000 * MS


async def test_blackhole_release_waits_for_the_next_retransmission(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"x", 5 * tf)
    await link.set_faults(Faults(blackhole=True, blackhole_rto_ms=100))
    t0 = time.monotonic()
    writer.write(b"late")
    await wait_until(lambda: link.stats.directions["up"].held_bytes == 4, 5 * tf)
    await asyncio.sleep(max(0.0, t0 + 0.15 - time.monotonic()))
    await link.set_faults(Faults())  # lifted 150 ms after the send: next retransmit at 300 ms
    await asyncio.wait_for(reader.readexactly(4), 5 * tf)
    assert upstream.recv_times[-1] - t0 >= 0.3 - 0.01
    writer.close()


async def test_blackhole_resets_a_connection_after_the_give_up_time(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"a", 5 * tf)
    await roundtrip(idle_reader, idle_writer, b"b", 5 * tf)
    await link.set_faults(Faults(blackhole=True, blackhole_giveup_ms=200))
    writer.write(b"never acknowledged")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 5 * tf)
    assert link.stats.blackhole_resets == 1
    assert link.stats.directions["up"].dropped_bytes == len(b"never acknowledged")
    await asyncio.sleep(0.1)
    await link.set_faults(Faults())
    # A connection with nothing to send lives through the hole, as an idle TCP one does.
    assert await roundtrip(idle_reader, idle_writer, b"still here", 5 * tf) >= 0
    writer.close()
    idle_writer.close()


async def test_blackhole_resets_a_connection_holding_too_much(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"a", 5 * tf)
    await link.set_faults(Faults(blackhole=True))
    chunk = b"z" * 65536
    with pytest.raises(ConnectionResetError):
        for _ in range(BLACKHOLE_MAX_HELD_BYTES // len(chunk) + 64):
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 5 * tf)
        await asyncio.wait_for(reader.read(10), 5 * tf)
    assert link.stats.blackhole_resets == 1
    writer.close()


async def test_slow_close_passes_the_close_on_late(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    await link.set_faults(Faults(slow_close_ms=300))
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    await roundtrip(reader, writer, b"bye", 5 * tf)
    t0 = time.monotonic()
    writer.write_eof()
    await asyncio.wait_for(upstream.ended.wait(), 5 * tf)
    assert upstream.eof_at and upstream.eof_at[0] - t0 >= 0.3 - 0.005
    writer.close()


async def test_close_is_passed_on_after_the_data(make_link: Any, upstream: Any, tf: float) -> None:
    link = await make_link(delay_ms=20, setup_rtts=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    writer.write(b"last words")
    writer.write_eof()
    await asyncio.wait_for(upstream.ended.wait(), 5 * tf)
    assert b"".join(upstream.received) == b"last words"
    assert await asyncio.wait_for(reader.read(), 5 * tf) == b"last words"
    writer.close()


async def test_unreachable_upstream_closes_the_client_and_is_counted(tf: float, port: int) -> None:
    link = Link(
        "dead",
        listen_host="127.0.0.1",
        listen_port=0,
        upstream_host="127.0.0.1",
        upstream_port=port,  # nothing listens here
        shape=LinkShape(setup_rtts=0),
    )
    await link.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 5 * tf)
        assert link.stats.upstream_failures == 1
        writer.close()
    finally:
        await link.stop()


async def test_connection_made_during_blackhole_works_once_it_is_lifted(
    make_link: Any, upstream: Any, tf: float
) -> None:
    link = await make_link(delay_ms=1, setup_rtts=0)
    await link.set_faults(Faults(blackhole=True, blackhole_rto_ms=0))
    reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
    writer.write(b"held")
    await writer.drain()
    await wait_until(lambda: link.stats.directions["up"].held_bytes == 4, 5 * tf)
    await link.set_faults(Faults())
    assert await roundtrip(reader, writer, b"", 5 * tf) >= 0
    assert await asyncio.wait_for(reader.readexactly(4), 5 * tf) == b"held"
    assert await roundtrip(reader, writer, b"found", 5 * tf) >= 0
    assert b"".join(upstream.received) == b"heldfound"
    writer.close()


async def test_a_peer_that_does_not_read_pushes_back_instead_of_filling_memory(
    make_link: Any, tf: float
) -> None:
    stalled = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0, limit=1024)
    link = Link(
        "stall",
        listen_host="127.0.0.1",
        listen_port=0,
        upstream_host="127.0.0.1",
        upstream_port=server.sockets[0].getsockname()[1],
        shape=LinkShape(setup_rtts=0),
    )
    await link.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", link.listen_port)
        writer.write(b"x" * 64 * 1024 * 1024)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 1.0)
        assert link.stats.directions["up"].bytes < 32 * 1024 * 1024
        writer.transport.abort()
    finally:
        stalled.set()
        await link.stop()
        server.close()
        await server.wait_closed()
