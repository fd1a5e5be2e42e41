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
import signal
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


# --- where the bytes go: a server under tracemalloc -------------------------------------------
#
# ``python -m travelagent.bench.memory trace gateway|realtime [N]`` starts the bench topology
# with that server wrapped (``serve-traced``: tracemalloc on, and SIGUSR1 writes a snapshot and
# the live objects counted by type), opens and closes the warm-up connections, takes a snapshot,
# opens N idle connections (2,000 by default: tracemalloc makes the server several times
# slower), takes another, and prints the difference per connection: by allocating line, by
# package, and the objects by type. tracemalloc's own bookkeeping inflates RSS; read its bytes,
# not the server's RSS, from this mode.

TRACE_CONNECTIONS = 2_000
SNAPSHOT_ENV = "TRAVELAGENT_TRACE_SNAPSHOT"


def serve_traced(argv: list[str]) -> int:
    """Run ``travelagent <argv>`` with tracemalloc on; SIGUSR1 writes ``<prefix>.<n>.snap``,
    ``.types.json`` and then ``.done`` (``<prefix>`` from ``TRAVELAGENT_TRACE_SNAPSHOT``)."""
    import gc
    import tracemalloc
    from collections import Counter

    from travelagent.cli import main as cli_main

    prefix = os.environ[SNAPSHOT_ENV]
    taken = [0]
    tracemalloc.start(4)

    def snapshot(signum: int, frame: object) -> None:
        gc.collect()
        path = f"{prefix}.{taken[0]}"
        taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{path}.snap")
        types = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        Path(f"{path}.types.json").write_text(json.dumps(types))
        Path(f"{path}.done").write_text("")

    signal.signal(signal.SIGUSR1, snapshot)
    return int(cli_main(argv) or 0)


def traced_command(
    build: Callable[[ComponentContext], list[str]],
) -> Callable[[ComponentContext], list[str]]:
    """``build``'s command (``python -m travelagent ...``) run through ``serve-traced``."""

    def command(ctx: ComponentContext) -> list[str]:
        argv = build(ctx)
        i = argv.index("-m")
        return [argv[0], "-m", "travelagent.bench.memory", "serve-traced", *argv[i + 2 :]]

    return command


def per_connection_report(
    before: Any, after: Any, types: tuple[dict[str, int], dict[str, int]], n: int, top: int = 40
) -> str:
    """The difference of two tracemalloc snapshots and type counts, per connection, as text."""
    lines = [f"traced per connection: {sum_diff(after, before) / n:,.0f} B"]
    lines.append("-- by package")
    packages: dict[str, float] = {}
    for st in after.compare_to(before, "filename"):
        name = package_of(st.traceback[0].filename)
        packages[name] = packages.get(name, 0.0) + st.size_diff / n
    for name, size in sorted(packages.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"{size:9.0f} B  {name}")
    lines.append("-- by line")
    for st in after.compare_to(before, "lineno")[:top]:
        lines.append(f"{st.size_diff / n:9.1f} B  {st.count_diff / n:6.2f} obj  {st.traceback[0]}")
    lines.append("-- objects by type")
    was, now = types
    counts = {k: (now[k] - was.get(k, 0)) / n for k in now}
    for name, c in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        if c >= 0.05:
            lines.append(f"{c:9.2f}    {name}")
    return "\n".join(lines) + "\n"


def sum_diff(after: Any, before: Any) -> int:
    return sum(st.size_diff for st in after.compare_to(before, "filename"))


def package_of(filename: str) -> str:
    """The package (or stdlib module group) a source file belongs to, for grouping."""
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "travelagent" in parts:
        return "travelagent"
    name = parts[-1]
    if "asyncio" in parts or name in ("socket.py", "selectors.py", "_weakrefset.py"):
        return "asyncio"
    return name


async def trace_server(
    kind: str, connections: int, run_dir: Path
) -> tuple[Path, Path, dict[str, Any]]:
    """Snapshots of ``kind``'s server before and after ``connections`` idle connections (their
    path prefixes), and the idle clients' count of what opened."""
    name = "worker" if kind == "gateway" else "realtime"
    scenario = services.bench_scenario("memory-trace")
    topo = services.topology(scenario, run_dir)
    topo.start_timeout_s = max(topo.start_timeout_s, 120.0)  # tracemalloc slows the start
    commands = uncapped_commands()
    commands[name] = traced_command(commands[name])
    topo.commands.update(commands)
    prefix = run_dir / f"{kind}-trace"
    os.environ[SNAPSHOT_ENV] = str(prefix)  # the servers inherit it
    async with topo:
        pid = topo.pids[name]
        clients = IdleClients(kind, topo.urls[kind], connections, WARM_CONNECTIONS,
                              topo.client_env())  # fmt: skip
        try:
            await clients.warm()
            await asyncio.sleep(SETTLE_S)
            first = await _snapshot(pid, Path(f"{prefix}.0"))
            info = await clients.hold()
            await asyncio.sleep(SETTLE_S)
            second = await _snapshot(pid, Path(f"{prefix}.1"))
        finally:
            await clients.close()
    return first, second, info


def trace_report(kind: str, first: Path, second: Path, info: dict[str, Any]) -> str:
    import tracemalloc

    before, after = (tracemalloc.Snapshot.load(f"{p}.snap") for p in (first, second))
    types = [json.loads(Path(f"{p}.types.json").read_text()) for p in (first, second)]
    n = int(info["open"])
    head = f"{kind}: {n} idle connections ({info['failed']} failed)\n"
    return head + per_connection_report(before, after, (types[0], types[1]), n)


async def _snapshot(pid: int, path: Path, timeout_s: float = 300.0) -> Path:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(os.path.exists, f"{path}.done"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no snapshot from pid {pid} within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve-traced"]:
        return serve_traced(args[1:])
    if len(args) in (2, 3) and args[0] == "trace" and args[1] in ("gateway", "realtime"):
        from travelagent.bench.idle import raise_nofile_limit

        raise_nofile_limit()
        n = int(args[2]) if len(args) == 3 else TRACE_CONNECTIONS
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        run_dir = (Path("data/runs") / f"{stamp}-{os.getpid()}-memtrace").resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        report = trace_report(args[1], *asyncio.run(trace_server(args[1], n, run_dir)))
        (run_dir / f"{args[1]}-trace.txt").write_text(report)
        print(report, end="")
        print(f"snapshots and report in {run_dir}")
        return 0
    print("usage: python -m travelagent.bench.memory trace gateway|realtime [N]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
