"""Benchmark of link accuracy (not a test): ``python -m travelagent.link.bench``.

Starts the links in a subprocess (as the topology does) in front of an echo server in this
process, sends newline-framed messages through at a steady rate, and prints the measured
one-way delay (send by the client to receipt by the server, both on the host's monotonic
clock) against the configured delay, then the set-up cost of a new connection (first round
trip on a new connection minus a round trip on a warm one) against the configured cost.
It runs once per timer kind, so the choice of timer stays justified by numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class _Echo:
    """Records the receive time of each line, and echoes it back."""

    def __init__(self) -> None:
        self.recv_ns: dict[int, int] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            t = time.monotonic_ns()
            seq = int(line.split(b" ", 1)[0])
            if seq >= 0:
                self.recv_ns.setdefault(seq, t)
            writer.write(line)
        writer.close()


async def _one_way(port: int, echo: _Echo, *, rate: float, seconds: float) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"-1 warm-up\n")  # pay the connection set-up cost before measuring
    await reader.readline()
    sent: dict[int, int] = {}
    count = int(rate * seconds)
    start = time.monotonic()
    for seq in range(count):
        # Open-loop schedule: each message at its own time, whatever came before.
        await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
        sent[seq] = time.monotonic_ns()
        writer.write(b"%d x\n" % seq)
    for _ in range(count):
        await reader.readline()
    writer.close()
    await writer.wait_closed()
    return [(echo.recv_ns[s] - sent[s]) / 1e6 for s in sent if s in echo.recv_ns]


async def _setup_cost(port: int, *, trials: int) -> list[float]:
    costs = []
    for i in range(trials):
        t0 = time.monotonic_ns()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"%d new\n" % (10_000_000 + i))
        await reader.readline()
        first_ms = (time.monotonic_ns() - t0) / 1e6
        t1 = time.monotonic_ns()
        writer.write(b"%d warm\n" % (20_000_000 + i))
        await reader.readline()
        warm_ms = (time.monotonic_ns() - t1) / 1e6
        costs.append(first_ms - warm_ms)
        writer.close()
        await writer.wait_closed()
    return costs


async def _run(timer: str, args: argparse.Namespace) -> dict[str, float]:
    echo = _Echo()
    server = await asyncio.start_server(echo.handle, "127.0.0.1", 0)
    echo_port = server.sockets[0].getsockname()[1]
    link_port, control_port = _free_port(), _free_port()
    config = {
        "control": f"127.0.0.1:{control_port}",
        "timer": timer,
        "links": [
            {
                "name": "bench",
                "listen": f"127.0.0.1:{link_port}",
                "upstream": f"127.0.0.1:{echo_port}",
                "shape": {"delay_ms": args.delay_ms, "setup_rtts": args.setup_rtts},
                "seed": 1,
                "record": True,
            }
        ],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(config, fh)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "travelagent.link", "--config", fh.name, stdout=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"http://127.0.0.1:{control_port}/healthz")).is_success:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        # The same traffic straight to the echo server: the stack's own cost, without the link.
        direct = await _one_way(echo_port, echo, rate=args.rate, seconds=min(args.seconds, 2))
        echo.recv_ns.clear()
        one_way = await _one_way(link_port, echo, rate=args.rate, seconds=args.seconds)
        setup = await _setup_cost(link_port, trials=args.trials)
        from travelagent.config import LINK_CONTROL_TOKEN_ENV, secret
        from travelagent.http_auth import bearer_headers

        async with httpx.AsyncClient(
            headers=bearer_headers(secret(LINK_CONTROL_TOKEN_ENV))
        ) as http:
            url = f"http://127.0.0.1:{control_port}/links/bench/records"
            records = (await http.get(url)).json()["records"]
        await asyncio.sleep(0.2 + 4 * args.delay_ms / 1000)  # let the last closes through
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=5)
        os.unlink(fh.name)
        server.close()
        await server.wait_closed()
    late_ms = [
        (r["delivered_ns"] - r["scheduled_ns"]) / 1e6 for r in records if r["direction"] == "up"
    ]
    return {
        "direct_p50": statistics.median(direct),
        "direct_p99": _pct(direct, 99),
        "late_p50": statistics.median(late_ms),
        "late_p99": _pct(late_ms, 99),
        "n": len(one_way),
        "p50": statistics.median(one_way),
        "p99": _pct(one_way, 99),
        "max": max(one_way),
        "setup_p50": statistics.median(setup),
    }


async def measure(
    timer: str = "timerfd",
    *,
    delay_ms: float,
    rate: float,
    seconds: float,
    setup_rtts: float = 0.0,
    trials: int = 5,
) -> dict[str, float]:
    """One measurement as ``main`` prints it, for other programs (the benchmark suite):
    ``p50``/``p99`` one-way through the link, ``direct_p50``/``direct_p99`` without it (ms)."""
    args = argparse.Namespace(
        delay_ms=delay_ms, rate=rate, seconds=seconds, setup_rtts=setup_rtts, trials=trials
    )
    return await _run(timer, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m travelagent.link.bench")
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--setup-rtts", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=30, help="new connections for set-up cost")
    parser.add_argument("--timers", default="timerfd,thread,loop", help="timer kinds to compare")
    args = parser.parse_args(argv)
    setup_cfg = args.setup_rtts * 2 * args.delay_ms
    print(
        f"link: one-way delay {args.delay_ms:g} ms, setup {args.setup_rtts:g} RTT "
        f"(= {setup_cfg:g} ms), {args.rate:g} msg/s for {args.seconds:g} s"
    )
    for timer in args.timers.split(","):
        r = asyncio.run(_run(timer, args))
        added = r["p50"] - r["direct_p50"]
        print(
            f"timer={timer:<6} n={r['n']:<6} one-way p50 {r['p50']:.3f} ms "
            f"(err {r['p50'] - args.delay_ms:+.3f})  p99 {r['p99']:.3f} ms "
            f"(err {r['p99'] - args.delay_ms:+.3f})  max {r['max']:.3f} ms  "
            f"setup p50 {r['setup_p50']:.3f} ms (configured {setup_cfg:g})"
        )
        print(
            f"             without the link (same traffic, direct): p50 {r['direct_p50']:.3f} ms,"
            f" p99 {r['direct_p99']:.3f} ms; added by the link: p50 "
            f"{added:.3f} ms (err {added - args.delay_ms:+.3f})"
        )
        print(
            f"             inside the link: write after scheduled time p50 "
            f"{r['late_p50']:.3f} ms, p99 {r['late_p99']:.3f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
