"""The load-generator section: what one Locust process can drive, beside a bare asyncio client.

Targets: the stand-in gateway (``loadtests/standin.py``, no agent, replies at once) and the real
gateway. Locust runs as the project runs it (``loadtests/locustfile.py``, ``GatewayUser``, closed
loop, records to Parquet) in one process; its rate is taken over the whole seconds of its run
(the first and last, partial, are dropped). The bare client is ``AsyncGatewayClient`` with the
same number of users, through the round-trip driver. Each Locust trial also gives the Locust
process's CPU time per message over the same whole seconds (``cpu_ms_per_message``, from
``/proc``): what one message costs the generator, whatever else the machine is doing.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from travelagent.bench import clients
from travelagent.bench.trial import closed_loop
from travelagent.topology.launcher import ROOT

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CPU_SAMPLE_S = 0.05
STANDIN = ROOT / "loadtests" / "standin.py"


def _entry(stats: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(e for e in stats if e["name"] == name and e["method"] == "WS")


def whole_seconds(stats: list[dict[str, Any]], name: str = "gateway") -> list[tuple[int, int]]:
    """(second, messages) of Locust's ``--json`` entry ``name``: its whole seconds (the first
    and last, partial, dropped)."""
    per_s = sorted((int(k), v) for k, v in _entry(stats, name)["num_reqs_per_sec"].items())
    return per_s[1:-1]


def locust_rate(stats: list[dict[str, Any]], name: str = "gateway") -> tuple[float, int]:
    """Messages per second of Locust's ``--json`` entry ``name``, over its whole seconds."""
    entry = _entry(stats, name)
    full = [v for _, v in whole_seconds(stats, name)]
    if full:
        return float(statistics.fmean(full)), int(entry["num_requests"])
    span = entry["last_request_timestamp"] - entry["start_time"]
    return (entry["num_requests"] / span if span > 0 else 0.0), int(entry["num_requests"])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (``/proc/<pid>/stat``); None once it is gone
    or where there is no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_per_message_ms(samples: list[tuple[float, float]], seconds: list[tuple[int, int]]) -> float:
    """Milliseconds of CPU per message over the whole ``seconds`` (from ``whole_seconds``),
    from ``samples`` of (wall time, CPU seconds): the CPU at the last sample at or before each
    end of the span. NaN when the samples do not cover it or no message fell in it."""
    if not seconds:
        return float("nan")
    start, end = seconds[0][0], seconds[-1][0] + 1
    n = sum(v for _, v in seconds)
    before = [c for t, c in samples if t <= start]
    upto = [c for t, c in samples if t <= end]
    if not before or not upto or n <= 0:
        return float("nan")
    return (upto[-1] - before[-1]) * 1000 / n


async def run_locust(
    url: str, *, users: int, seconds: float, run_dir: Path, tree: Path | None = None
) -> dict[str, Any]:
    """One Locust trial; ``tree``: another tree's ``loadtests`` and ``travelagent`` (first on
    ``PYTHONPATH``) instead of this one's."""
    locustfile = LOCUSTFILE if tree is None else tree / "loadtests" / "locustfile.py"
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    argv = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--json", "--skip-log", "-u", str(users), "-r", str(min(users, 100)),
        "-t", f"{max(3, round(seconds))}s", "--stop-timeout", "2", "--arch", "gateway",
        "--gateway-url", url, "--stream", "false", "--run-dir", str(run_dir),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        cwd=run_dir.parent, env=env,
    )  # fmt: skip
    # The Locust process's CPU time, sampled through its run: CPU per message over the same
    # whole seconds as the rate depends far less on the machine's other work than the rate.
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while (cpu := cpu_seconds(proc.pid)) is not None:
            samples.append((time.time(), cpu))
            await asyncio.sleep(CPU_SAMPLE_S)

    sampler = asyncio.create_task(sample())
    try:
        out, _ = await proc.communicate()
    finally:
        sampler.cancel()
    if proc.returncode not in (0, 1):  # 1: some requests failed; the rate still stands
        raise RuntimeError(f"locust exited with {proc.returncode}")
    stats = json.loads(out)
    rate, n = locust_rate(stats)
    cpu_ms = cpu_per_message_ms(samples, whole_seconds(stats))
    return {"rate_per_s": rate, "messages": n, "cpu_ms_per_message": cpu_ms}


async def run_asyncio(url: str, *, users: int, seconds: float, label: str) -> dict[str, Any]:
    res = await closed_loop(
        clients.gateway(url), case=label, clients=users, round_no=0, duration_s=seconds,
        warmup=2, user_prefix=label,
    )  # fmt: skip
    return {"rate_per_s": res.rate_per_s, "messages": res.ok, "p50_ms": res.p50_ms}


async def run_loadgen(
    targets: dict[str, str],
    *,
    rounds: int,
    users: int,
    seconds: float,
    run_dir: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``targets``: name -> gateway URL. Every (generator, target) once per round, rotated."""
    combos = [(g, t) for t in targets for g in ("locust", "asyncio")]
    out = []
    for r in range(rounds):
        k = r % len(combos)
        for generator, target in combos[k:] + combos[:k]:
            url = targets[target]
            try:
                if generator == "locust":
                    trial_dir = run_dir / "locust" / f"{target}-{r}"
                    trial_dir.mkdir(parents=True, exist_ok=True)
                    m = await run_locust(url, users=users, seconds=seconds, run_dir=trial_dir)
                else:
                    label = f"lg{r}-{target}"
                    m = await run_asyncio(url, users=users, seconds=seconds, label=label)
            except (RuntimeError, ValueError, KeyError, StopIteration) as err:
                # One failed trial is a gap in the figure (and said in bench.json), not a lost run.
                m = {"rate_per_s": float("nan"), "error": f"{type(err).__name__}: {err}"}
            out.append({"round": r, "generator": generator, "target": target, "users": users, **m})
            if progress is not None:
                progress(out[-1])
    return out


async def run_versus(
    old: str, *, rounds: int, users: int, seconds: float, run_dir: Path
) -> list[dict[str, Any]]:
    """Locust of commit ``old`` and of this tree against one stand-in (this tree's), alternated
    round by round (old first in even rounds)."""
    from travelagent.bench.versus import extract
    from travelagent.runner.procs import ServedProcess
    from travelagent.topology.launcher import _free_ports

    trees: dict[str, Path | None] = {"old": extract(old, run_dir / "trees" / "old"), "new": None}
    port = _free_ports(1)[0]
    url = f"ws://127.0.0.1:{port}/api/gateway/ws"
    out: list[dict[str, Any]] = []
    with ServedProcess([str(STANDIN), "--port", str(port)], f"http://127.0.0.1:{port}/healthz"):
        for r in range(rounds):
            for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                trial_dir = run_dir / "locust" / f"{side}-{r}"
                trial_dir.mkdir(parents=True, exist_ok=True)
                m = await run_locust(
                    url, users=users, seconds=seconds, run_dir=trial_dir, tree=trees[side]
                )
                out.append({"round": r, "side": side, **m})
                print(f"round {r} {side}: {m['rate_per_s']:,.0f} msg/s, "
                      f"{m['cpu_ms_per_message']:.3f} ms CPU per message", flush=True)  # fmt: skip
    return out


def versus_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (min, max) per side, and the old/new CPU per message and new/old rate round by
    round."""
    from travelagent.bench.stats import Figure

    def side(name: str, key: str) -> Figure:
        return Figure.of(t[key] for t in trials if t["side"] == name)

    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for t in trials:
        by_round.setdefault(t["round"], {})[t["side"]] = t
    pairs = [p for p in by_round.values() if "old" in p and "new" in p]
    return {
        "rate_per_s": {s: side(s, "rate_per_s") for s in ("old", "new")},
        "cpu_ms_per_message": {s: side(s, "cpu_ms_per_message") for s in ("old", "new")},
        "cpu_old_over_new": Figure.of(
            p["old"]["cpu_ms_per_message"] / p["new"]["cpu_ms_per_message"] for p in pairs
        ),
        "rate_new_over_old": Figure.of(
            p["new"]["rate_per_s"] / p["old"]["rate_per_s"] for p in pairs
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m travelagent.bench.loadgen --versus OLD [--rounds 5]``: one Locust process of
    commit OLD and of this tree, alternated against one stand-in; rates and CPU per message."""
    import argparse

    from travelagent.client.runinfo import new_run_id

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--versus", required=True, help="the commit to compare with (git rev)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--out", default="", help="run directory (default: data/runs/<id>)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.users < 1 or args.seconds <= 0:
        p.error("--rounds and --users must be >= 1 and --seconds > 0")
    run_dir = Path(args.out or ROOT / "data" / "runs" / new_run_id("loadgen-versus-"))
    trials = asyncio.run(
        run_versus(args.versus, rounds=args.rounds, users=args.users, seconds=args.seconds,
                   run_dir=run_dir)
    )  # fmt: skip
    summary = versus_summary(trials)
    for key, figs in summary.items():
        if isinstance(figs, dict):
            for side, f in figs.items():
                print(f"{key} {side}: {f.median:.3f} ({f.low:.3f}-{f.high:.3f})")
        else:
            rounds = [round(v, 2) for v in figs.values]
            print(f"{key}: {figs.median:.2f} ({figs.low:.2f}-{figs.high:.2f}) {rounds}")
    doc = {
        "versus": args.versus,
        "settings": vars(args),
        "trials": trials,
        "summary": {
            k: {s: f.to_dict() for s, f in v.items()} if isinstance(v, dict) else v.to_dict()
            for k, v in summary.items()
        },
    }
    (run_dir / "loadgen-versus.json").write_text(json.dumps(doc, indent=1, default=str))
    print(f"results in {run_dir / 'loadgen-versus.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
