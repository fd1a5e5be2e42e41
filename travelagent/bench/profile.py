"""Profile the servers under the bench's load: ``python -m travelagent.bench.profile``.

Starts the bench scenario's topology with the worker (``--path gateway``) or the worker and the
realtime service (``--path rt-ws``: the ws-persistent publisher, not streamed) running under
``py-spy record`` (install with ``pip install -e '.[profile]'``; ``make bench-profile`` does
both), drives C clients of that path in a closed loop for a few seconds, stops the sampled
processes with SIGINT so py-spy writes their samples, and prints per process the functions with
the most samples: where the project's own code is the innermost frame (self) and anywhere on
the stack (total). The raw stacks (``<process>.pyspy.txt``, flamegraph-ready) and the report
stay in the run directory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from travelagent.bench import clients, services
from travelagent.bench.trial import closed_loop
from travelagent.client.runinfo import new_run_id
from travelagent.topology.launcher import Topology
from travelagent.topology.plan import ComponentContext, realtime_command, worker_command

Command = Callable[[ComponentContext], list[str]]

_LINE = re.compile(r":\d+\)$")


def frame_key(frame: str) -> str:
    """``name (path/file.py:123)`` without the line number: one entry per function."""
    return _LINE.sub(")", frame.strip())


PROJECT = "(travelagent/"
LOOP = "BaseEventLoop.run_forever ("
POOL = "_worker (concurrent/futures/thread.py)"
STORE = "AgentStore._serve (travelagent/agent/store.py)"  # the store's writer thread
IDLE = "EpollSelector.select ("
ENTRY = ("main (", "<module> (")  # the worker's entry points: on every stack of the loop

Top = list[tuple[str, int]]


@dataclass
class Profile:
    """What the samples say: where they were and the busiest functions."""

    total: int
    where: Top  # event loop busy / idle in select / thread pool / other
    own: Top  # by self samples (innermost frame)
    inclusive: Top  # by total samples (anywhere on the stack)
    project: Top  # by total samples, the project's own functions only


def top_frames(raw: str, *, n: int = 15) -> Profile:
    """Aggregate py-spy's raw (collapsed) stacks per function (line numbers dropped)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    where: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        frames = [frame_key(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += k
        own[frames[-1]] += k
        for f in set(frames):
            inclusive[f] += k
        if any(f.startswith(LOOP) for f in frames):
            idle = frames[-1].startswith(IDLE)
            where["event loop, waiting in select" if idle else "event loop, busy"] += k
        elif POOL in frames:
            where["thread pool"] += k
        elif STORE in frames:
            where["store writer thread"] += k
        else:
            where["other"] += k
    project = Counter(
        {f: k for f, k in inclusive.items() if PROJECT in f and not f.startswith(ENTRY)}
    )
    return Profile(total, where.most_common(), own.most_common(n), inclusive.most_common(n),
                   project.most_common(n))  # fmt: skip


def format_top(profile: Profile) -> str:
    total = max(profile.total, 1)
    out = [f"{profile.total} samples over every thread"]
    for title, rows in (
        ("where the samples were", profile.where),
        ("self (innermost frame)", profile.own),
        ("total (anywhere on the stack)", profile.inclusive),
        ("total, the project's own functions", profile.project),
    ):
        out += ["", f"{'%':>6}  {title}"]
        out += [f"{100 * k / total:6.1f}  {name}" for name, k in rows]
    return "\n".join(out)


PATHS = ("gateway", "rt-ws")  # the realtime path: ws-persistent publisher, not streamed


async def drive(topo: Topology, path: str, *, clients_n: int, seconds: float) -> str:
    if path == "gateway":
        factory = clients.gateway(topo.urls["gateway"])
    else:
        factory = clients.realtime(topo.urls["realtime"], jwt_secret=services.jwt_secret(topo),
                                   publish="ws-persistent", stream=False)  # fmt: skip
    res = await closed_loop(factory, case=path, clients=clients_n, round_no=0,
                            duration_s=seconds, warmup=3, user_prefix="profile")  # fmt: skip
    return f"{path} @{clients_n}: p50 {res.p50_ms:.2f} ms, {res.rate_per_s:,.0f} msg/s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m travelagent.bench.profile", description=__doc__)
    p.add_argument("--path", choices=PATHS, default="gateway",
                   help="gateway (the worker is sampled) or rt-ws (the worker and the realtime "
                        "service are, each into its own file)")  # fmt: skip
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=Path("data/runs"))
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.rate < 1:
        print("--clients and --rate must be >= 1, --seconds > 0", file=sys.stderr)
        return 2
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("py-spy not found: pip install -e '.[profile]' (or make bench-profile)",
              file=sys.stderr)  # fmt: skip
        return 2
    run_dir = (args.out / f"{new_run_id()}-profile").resolve()
    run_dir.mkdir(parents=True)
    sampled = ["worker"] if args.path == "gateway" else ["worker", "realtime"]
    raw = {name: run_dir / f"{name}.pyspy.txt" for name in sampled}

    def under_pyspy(name: str, command: Callable[[ComponentContext], list[str]]) -> Command:
        def wrapped(ctx: ComponentContext) -> list[str]:
            return [pyspy, "record", "--format", "raw", "--rate", str(args.rate), "--nonblocking",
                    "--output", str(raw[name]), "--", *command(ctx)]  # fmt: skip

        return wrapped

    scenario = services.bench_scenario(args.path, publish="ws-persistent", stream=False)
    topo = services.topology(scenario, run_dir)
    commands = {"worker": worker_command, "realtime": realtime_command}
    for name in sampled:
        topo.commands[name] = under_pyspy(name, commands[name])
    with topo:
        line = asyncio.run(drive(topo, args.path, clients_n=args.clients, seconds=args.seconds))
        for child in [c for c in topo.children if c.name in sampled]:
            child.signal_group(signal.SIGINT)  # it exits; py-spy then writes its file
            assert child.proc is not None
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"py-spy did not finish writing {child.name}'s samples in 30 s",
                      file=sys.stderr)  # fmt: skip
    missing = [name for name, path in raw.items() if not path.exists()]
    if missing:
        print(f"no profile written for {', '.join(missing)}; see {topo.log_dir}", file=sys.stderr)
        return 1
    parts = [f"{line} (under py-spy at {args.rate} Hz)"]
    for name, path in raw.items():
        parts += ["", f"== {name} ==", format_top(top_frames(path.read_text()))]
    report = "\n".join(parts)
    (run_dir / "profile.txt").write_text(report + "\n")
    print(report)
    print(f"\nraw stacks: {', '.join(str(p) for p in raw.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
