"""Profile the worker under the bench's gateway load: ``python -m travelagent.bench.profile``.

Starts the bench scenario's topology with the worker running under ``py-spy record`` (install
with ``pip install -e '.[profile]'``; ``make bench-profile`` does both), drives C gateway
clients in a closed loop for a few seconds, stops the worker with SIGINT so py-spy writes its
samples, and prints the functions with the most samples: where the worker's own code is the
innermost frame (self) and anywhere on the stack (total). The raw stacks (``worker.pyspy.txt``,
flamegraph-ready) and the report stay in the run directory.
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
from dataclasses import dataclass
from pathlib import Path

from travelagent.bench import clients, services
from travelagent.bench.trial import closed_loop
from travelagent.client.runinfo import new_run_id
from travelagent.topology.plan import ComponentContext, worker_command

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


async def drive(url: str, *, clients_n: int, seconds: float) -> str:
    res = await closed_loop(clients.gateway(url), case="gateway", clients=clients_n, round_no=0,
                            duration_s=seconds, warmup=3, user_prefix="profile")  # fmt: skip
    return f"gateway @{clients_n}: p50 {res.p50_ms:.2f} ms, {res.rate_per_s:,.0f} msg/s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m travelagent.bench.profile", description=__doc__)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=Path("data/runs"))
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("py-spy not found: pip install -e '.[profile]' (or make bench-profile)",
              file=sys.stderr)  # fmt: skip
        return 2
    run_dir = (args.out / f"{new_run_id()}-profile").resolve()
    run_dir.mkdir(parents=True)
    raw_path = run_dir / "worker.pyspy.txt"

    def profiled_worker(ctx: ComponentContext) -> list[str]:
        return [pyspy, "record", "--format", "raw", "--rate", str(args.rate), "--nonblocking",
                        "--output", str(raw_path), "--", *worker_command(ctx)]  # fmt: skip

    topo = services.topology(services.bench_scenario("gateway"), run_dir)
    topo.commands["worker"] = profiled_worker
    with topo:
        line = asyncio.run(drive(topo.urls["gateway"], clients_n=args.clients,
                                 seconds=args.seconds))  # fmt: skip
        [worker] = [c for c in topo.children if c.name == "worker"]
        worker.signal_group(signal.SIGINT)  # the worker exits; py-spy then writes its file
        assert worker.proc is not None
        try:
            worker.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("py-spy did not finish writing in 30 s", file=sys.stderr)
    if not raw_path.exists():
        print(f"no profile written; see {topo.log_dir}", file=sys.stderr)
        return 1
    report = f"{line} (under py-spy at {args.rate} Hz)\n" + format_top(
        top_frames(raw_path.read_text())
    )
    (run_dir / "profile.txt").write_text(report + "\n")
    print(report)
    print(f"\nraw stacks: {raw_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
