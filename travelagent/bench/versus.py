"""Two commits side by side in one run: ``python -m travelagent.bench.versus OLD [NEW]``
(``make bench-versus VERSUS=OLD``).

Each commit's ``travelagent``, ``loadtests`` and ``data/catalog`` are extracted with ``git
archive`` into a temporary directory (NEW defaults to ``HEAD``), and each starts its own bench
topologies (gateway; realtime with the publisher socket, not streamed) from there, with its own
launcher: the launcher puts its own tree first on the children's ``PYTHONPATH``, so a topology
started by this tree's launcher would run this tree's code whatever the environment says. One
client (this process, this tree's client) drives every server, a bare ``websockets`` echo as
the floor, in closed-loop trials at 1 and 20 clients, interleaved and reversed every other round.

Beside p50, p99 and the rate it reads the servers' CPU time per message from
``/proc/<pid>/stat`` (user + system, every thread), which the neighbours of a shared machine
move far less than wall-clock time, and the p50 of a fsynced SQLite WAL commit before each
round: the gateway's round trip at one client waits for one, the floor for none. Ratios (new to
old, to the floor) are taken round by round, then summarised as in the suite (``stats.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from travelagent.bench import clients
from travelagent.bench.floors import FloorServer
from travelagent.bench.stats import Figure, pairwise_ratio
from travelagent.bench.trial import ClientFactory, closed_loop

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("gateway", "ws-persistent")
SIDES = ("old", "new")
TREE_PARTS = ("travelagent", "loadtests", "data/catalog")


def extract(rev: str, into: Path) -> Path:
    """``rev``'s tree (the parts a topology needs) under ``into``; raise CalledProcessError."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, *TREE_PARTS], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def fsync_commit_p50_ms(directory: Path, n: int = 200) -> float:
    """The p50 of a one-row commit to a WAL database with ``synchronous=FULL`` in ``directory``."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        conn = sqlite3.connect(Path(d) / "probe.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE t (a)")
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (i,))
                conn.execute("COMMIT")
                times.append((time.perf_counter() - t0) * 1e3)
        finally:
            conn.close()
    return sorted(times)[n // 2]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Run by a child with the side's tree first on PYTHONPATH: its own launcher, its own code.
_SERVE = """
import asyncio, json, sys
from pathlib import Path
from travelagent.bench import services
from travelagent.topology.launcher import Topology
kind, side, run = sys.argv[1], sys.argv[2], Path(sys.argv[3])
async def main():
    if kind == "gateway":
        sc = services.bench_scenario(f"versus-{side}-gateway")
    else:
        sc = services.bench_scenario(f"versus-{side}-wsp", publish="ws-persistent", stream=False)
    async with Topology(sc, run_dir=run / side / kind) as t:
        print(json.dumps({"urls": t.urls, "secret": services.jwt_secret(t), "pids": t.pids}),
              flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


@dataclass
class Case:
    name: str
    factory: ClientFactory
    pids: list[int]
    trials: dict[int, list[dict[str, float]]] = field(default_factory=dict)


@contextlib.contextmanager
def served(kind: str, side: str, tree: Path, run_dir: Path) -> Iterator[dict[str, Any]]:
    catalog = str(tree / "data" / "catalog")
    env = {**os.environ, "PYTHONPATH": str(tree), "TRAVELAGENT_CATALOG_DIR": catalog}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, kind, side, str(run_dir)], env=env, cwd=tree,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {side} {kind} topology did not start (see {run_dir})")
        yield json.loads(line)
    finally:
        proc.communicate(timeout=60)


async def run(args: argparse.Namespace, trees: dict[str, Path], run_dir: Path) -> list[Case]:
    cases: list[Case] = []
    with contextlib.ExitStack() as stack:
        floor = stack.enter_context(FloorServer("websockets"))
        cases.append(Case("floor", clients.gateway(floor.url), []))
        for side in SIDES:
            for kind in KINDS:
                info = stack.enter_context(served(kind, side, trees[side], run_dir))
                if kind == "gateway":
                    factory = clients.gateway(info["urls"]["gateway"])
                    cases.append(Case(f"gateway-{side}", factory, [info["pids"]["worker"]]))
                else:
                    factory = clients.realtime(
                        info["urls"]["realtime"], jwt_secret=info["secret"],
                        publish="ws-persistent", stream=False,
                    )  # fmt: skip
                    pids = [info["pids"]["worker"], info["pids"]["realtime"]]
                    cases.append(Case(f"wsp-{side}", factory, pids))
        fsync: list[float] = []
        for r in range(args.rounds):
            fsync.append(fsync_commit_p50_ms(run_dir))
            for c in args.clients:
                for case in cases if r % 2 == 0 else cases[::-1]:
                    c0 = sum(cpu_s(p) for p in case.pids)
                    res = await closed_loop(
                        case.factory, case=case.name, clients=c, round_no=r,
                        duration_s=args.seconds, warmup=2, user_prefix=f"v{r}-{case.name}-{c}",
                    )  # fmt: skip
                    cpu = sum(cpu_s(p) for p in case.pids) - c0
                    row = {"p50": res.p50_ms, "p99": res.p99_ms, "rate": res.rate_per_s,
                           "cpu_ms": 1e3 * cpu / max(res.ok, 1), "failed": res.failed}  # fmt: skip
                    case.trials.setdefault(c, []).append(row)
                    print(f"  r{r} {case.name:<12} @{c:<3} p50 {res.p50_ms:7.2f} ms  "
                          f"{res.rate_per_s:6.0f} msg/s  {row['cpu_ms']:.2f} ms CPU/msg",
                          flush=True)  # fmt: skip
        print(f"fsynced WAL commit p50 per round: {', '.join(f'{v:.3f} ms' for v in fsync)}")
    return cases


def report(cases: list[Case], counts: tuple[int, ...]) -> None:
    by = {c.name: c for c in cases}

    def fig(name: str, c: int, key: str) -> Figure:
        return Figure.of(t[key] for t in by[name].trials[c])

    def ratio(a: str, b: str, c: int, key: str) -> Figure:
        return pairwise_ratio([t[key] for t in by[a].trials[c]], [t[key] for t in by[b].trials[c]])

    def show(f: Figure, fmt: str = ".2f") -> str:
        return f"{f.median:{fmt}} ({f.low:{fmt}}-{f.high:{fmt}})"

    print("\nmedian (min-max) over the rounds; ratios round by round")
    for c in counts:
        for case in cases:
            line = (f"{case.name:<12} @{c:<3} p50 {show(fig(case.name, c, 'p50'))} ms  "
                    f"p99 {show(fig(case.name, c, 'p99'))} ms  "
                    f"rate {show(fig(case.name, c, 'rate'), '.0f')} msg/s")  # fmt: skip
            if case.pids:
                line += f"  CPU {show(fig(case.name, c, 'cpu_ms'))} ms/msg"
                line += f"  p50/floor {show(ratio(case.name, 'floor', c, 'p50'))}×"
            print(line)
    for c in counts:
        for kind in ("gateway", "wsp"):
            new, old = f"{kind}-new", f"{kind}-old"
            print(f"{kind} @{c} new/old: p50 {show(ratio(new, old, c, 'p50'), '.3f')}  "
                  f"rate {show(ratio(new, old, c, 'rate'), '.3f')}  "
                  f"CPU/msg {show(ratio(new, old, c, 'cpu_ms'), '.3f')}")  # fmt: skip
        for side in SIDES:
            print(f"wsp/gateway {side} @{c}: p50 "
                  f"{show(ratio(f'wsp-{side}', f'gateway-{side}', c, 'p50'))}×")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m travelagent.bench.versus",
        description="Two commits side by side in one run (docs/bench.md).",
    )
    parser.add_argument("old", help="the commit to compare against (e.g. main, a1b2c3d)")
    parser.add_argument("new", nargs="?", default="HEAD", help="default HEAD (committed work)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per trial")
    parser.add_argument("--clients", default="1,20", help="comma-separated client counts")
    args = parser.parse_args(argv)
    args.clients = tuple(int(c) for c in args.clients.split(","))
    run_dir = ROOT / "data" / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-versus"
    run_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp:
        revs = {"old": args.old, "new": args.new}
        trees = {side: extract(revs[side], Path(tmp) / side) for side in SIDES}
        print(f"old = {args.old}, new = {args.new}; {args.rounds} round(s) of {args.seconds:g} s "
              f"trials at {args.clients} clients; servers' logs in {run_dir}")  # fmt: skip
        cases = asyncio.run(run(args, trees, run_dir))
    report(cases, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
