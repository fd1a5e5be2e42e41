"""Agent-side latency numbers: ``python -m travelagent.agent.bench [--messages N]``.

Reports, per setting, percentiles of one turn's wall time as the caller sees it:
- local agent with the ``instant`` profile: the agent's own cost (gates, two durable commits);
- local agent with the ``note`` profile: what the simulated model adds;
- remote agent over the host's pooled RPC (``instant``): the extra hop on loopback.
A benchmark reports numbers; the tests check behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from travelagent.agent.base import Agent

QUESTIONS = [
    "hotels in Tokyo",
    "when should I visit Lisbon?",
    "add day trip to Kyoto",
    "budget tips",
    "flights from London to Tokyo on 2026-12-10",
    "hello",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(agent: Agent, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await agent.handle_message(QUESTIONS[i % len(QUESTIONS)])
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _line(label: str, ms: list[float]) -> str:
    return (
        f"{label:<34} n={len(ms):<5} p50={_pct(ms, 0.5):7.2f} ms  p90={_pct(ms, 0.9):7.2f} ms"
        f"  p99={_pct(ms, 0.99):7.2f} ms  mean={statistics.fmean(ms):7.2f} ms"
    )


async def run(n: int, synchronous: str) -> None:
    from aiohttp import web

    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.host import create_app
    from travelagent.agent.llm import make_llm
    from travelagent.agent.remote import RemoteAgentDirectory

    with tempfile.TemporaryDirectory() as tmp:
        for profile in ("instant", "note"):
            d = LocalAgentDirectory(
                Path(tmp) / f"{profile}.db", llm=make_llm(profile=profile), synchronous=synchronous
            )
            count = n if profile == "instant" else max(10, n // 10)
            print(_line(f"local, {profile}", await _measure(d.get("bench"), count)), flush=True)
            await d.close()
        host = LocalAgentDirectory(Path(tmp) / "host.db", process="agents", synchronous=synchronous)
        runner = web.AppRunner(create_app(host))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        remote = RemoteAgentDirectory(f"http://127.0.0.1:{port}")
        try:
            print(_line("remote RPC (loopback), instant", await _measure(remote.get("bench"), n)))
        finally:
            await remote.close()
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    args = parser.parse_args(argv)
    asyncio.run(run(args.messages, args.synchronous))
    return 0


if __name__ == "__main__":
    sys.exit(main())
