"""The memory section: server RSS per idle WebSocket connection, gateway and realtime.

Per round, a fresh topology (the bench scenario, no link proxies, so each connection reaches
the server itself). For each server: a few hundred connections opened and closed first (code
paths and pools warmed), RSS read from ``/proc``, then N idle connections opened by a separate
client process (``travelagent.bench.idle``), RSS read again after a short settle. The figure is
the difference divided by the connections actually open.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from travelagent.bench import services
from travelagent.topology.plan import ComponentContext, realtime_command, worker_command

WARM_CONNECTIONS = 200
SETTLE_S = 1.0


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class IdleClients:
    """The client process: ``warm()`` (connections opened and closed), then ``hold()`` (N
    connections open until ``close()``)."""

    def __init__(self, kind: str, url: str, count: int, warm: int, env: dict[str, str]) -> None:
        self.argv = [sys.executable, "-m", "travelagent.bench.idle", kind, url, str(count),
                     str(warm)]  # fmt: skip
        self.env = {**os.environ, **env}
        self.proc: asyncio.subprocess.Process | None = None

    async def _line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            await self.proc.wait()
            raise RuntimeError(f"idle clients exited with {self.proc.returncode}")
        return dict(json.loads(line))

    async def warm(self) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=self.env,
        )  # fmt: skip
        return await self._line()

    async def hold(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        return await self._line()

    async def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            await self.proc.wait()


async def measure_server(
    kind: str, url: str, pid: int, count: int, env: dict[str, str]
) -> dict[str, Any]:
    clients = IdleClients(kind, url, count, WARM_CONNECTIONS, env)
    try:
        await clients.warm()
        await asyncio.sleep(SETTLE_S)
        before = rss_kib(pid)
        info = await clients.hold()
        await asyncio.sleep(SETTLE_S)
        after = rss_kib(pid)
    finally:
        await clients.close()
    opened = int(info["open"])
    return {
        "server": kind, "connections": count, "open": opened, "failed": info["failed"],
        "connect_s": info["seconds"], "rss_before_kib": before, "rss_after_kib": after,
        "per_connection_kib": (after - before) / opened if opened else float("nan"),
    }  # fmt: skip


async def run_memory(
    *,
    rounds: int,
    connections: int,
    run_dir: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Up to ``rounds`` rounds; a further round starts only if one more, as long as the last,
    still ends before ``deadline`` (``time.perf_counter()`` seconds)."""
    out: list[dict[str, Any]] = []
    round_s = 0.0
    for r in range(rounds):
        if deadline is not None and r and time.perf_counter() + round_s > deadline:
            break
        t0 = time.perf_counter()
        scenario = services.bench_scenario(f"memory-{r}")
        topo = services.topology(scenario, run_dir)
        # 10,000 sockets come from one address: lift the servers' per-address cap (1,000 by
        # default), which would otherwise refuse all but the first 1,000.
        topo.commands.update(uncapped_commands())
        async with topo:
            env = topo.client_env()
            servers = [("gateway", topo.urls["gateway"], topo.pids["worker"]),
                       ("realtime", topo.urls["realtime"], topo.pids["realtime"])]  # fmt: skip
            for kind, url, pid in servers if r % 2 == 0 else servers[::-1]:
                m = await measure_server(kind, url, pid, connections, env)
                out.append({"round": r, **m})
                if progress is not None:
                    progress(out[-1])
        round_s = time.perf_counter() - t0
    return out


def uncapped_commands() -> dict[str, Callable[[ComponentContext], list[str]]]:
    """The worker's and the realtime service's commands with no per-address connection cap."""

    def worker(ctx: ComponentContext) -> list[str]:
        return [*worker_command(ctx), "--max-connections-per-address", "0"]

    def realtime(ctx: ComponentContext) -> list[str]:
        return [*realtime_command(ctx), "--max-connections-per-address", "0"]

    return {"worker": worker, "realtime": realtime}
