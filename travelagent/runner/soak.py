"""``make soak`` (``python -m travelagent.runner.soak``): minutes of steady load on each path,
with every process's resident memory recorded over time (docs/chaos.md).

For each path a fresh topology runs ``--minutes`` of closed-loop load from a fixed set of users
(the same agents throughout: memory that grows is then the servers', not new agents'). A
``CpuSampler`` reads CPU and RSS of every process, the load generator included, every
``--sample-s``. Written into the run directory: ``soak.json`` (the figures), and per path
``cells/<path>/rss.csv``, ``cpu.csv`` and the messages. Printed: messages, errors by status,
and per process the RSS at the start and at the end and its slope in MiB per minute with a 95%
interval.

The slope is fitted on the medians of consecutive windows (``WINDOW_S``) after a warm-up (the
first ``WARMUP_FRACTION`` of the soak, at least one window): samples 1 s apart are not
independent, window medians much less so; the interval is the fit's standard error times the
t quantile for its degrees of freedom.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from travelagent.client.records import Recorder, finalize_run
from travelagent.client.runinfo import iso_now, new_run_id, write_run_json
from travelagent.config import JWT_SECRET_ENV
from travelagent.monitor import CpuSampler, start_tracemalloc_from_env
from travelagent.runner.load import LoadState, Target, UserLoad, run_users
from travelagent.sqlite import CACHE_KIB_ENV
from travelagent.worker.cli import DEDUP_MEMORY_ENV

WINDOW_S = 10.0
WARMUP_FRACTION = 0.1
# Memory is called flat when the 95% interval of its second-half slope lies within ± this.
FLAT_BOUND_MIB_PER_MIN = 0.5
# The realtime service's idempotency cache during a soak: full within about 75 s at the soak's
# rate (about 11 messages/s, each of a start, chunks and a final: some 55 keys/s), so its filling
# does not pass for a leak; at the service's default cap (100,000) it would fill for half an
# hour. Its bound is its size: about 300 B a key (docs/chaos.md).
SOAK_IDEMPOTENCY_MAX_KEYS = 4096
# Each SQLite connection's page cache during the soak (KiB): SQLite's default, 2,000 KiB, fills
# as the files grow and takes minutes to, which a soak would read as a leak.
SOAK_SQLITE_CACHE_KIB = 256
# The worker's webhook ids in memory during a soak (default 16,384: full after 25 min at the
# soak's 11 webhooks/s); 1,024 fill in about 90 s, and the log answers for the rest.
SOAK_DEDUP_MEMORY = 1024
MIB = 1024 * 1024
# two-sided 97.5% t quantiles by degrees of freedom (beyond the table: the normal's 1.96)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042,
         40: 2.021, 60: 2.000, 120: 1.980}  # fmt: skip

PATHS: dict[str, dict[str, Any]] = {
    "gateway": {"arch": "gateway", "overrides": {}},
    "rt-ws": {"arch": "realtime", "overrides": {"worker.publish": "ws-persistent"}},
    "rt-pooled": {"arch": "realtime", "overrides": {"worker.publish": "http-pooled"}},
    "rt-new": {"arch": "realtime", "overrides": {"worker.publish": "http-new"}},
}


def t975(df: int) -> float:
    if df <= 0:
        return math.nan
    keys = [k for k in _T975 if k <= df]
    return _T975[max(keys)] if df <= 120 else 1.96


def slope_per_minute(points: list[tuple[float, float]]) -> tuple[float, float, float, int]:
    """Least-squares slope of (seconds, value) per minute: (slope, ci_low, ci_high, n)."""
    n = len(points)
    if n < 3:
        return (math.nan, math.nan, math.nan, n)
    xs = [p[0] / 60 for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return (math.nan, math.nan, math.nan, n)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    resid = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx)
    h = t975(n - 2) * se
    return (b, b - h, b + h, n)


def verdict(lo: float, hi: float, bound: float = FLAT_BOUND_MIB_PER_MIN) -> str:
    """``flat`` if the slope's interval [lo, hi] lies within ± ``bound`` MiB/min, ``growing``
    if it lies wholly above ``bound``, else ``unclear`` (too wide, or too few windows)."""
    if math.isnan(lo) or math.isnan(hi):
        return "unclear"
    if -bound <= lo and hi <= bound:
        return "flat"
    if lo > bound:
        return "growing"
    return "unclear"


def memory_summary(
    rss: list[tuple[int, str, int]],
    t0_ns: int,
    duration_s: float,
    *,
    bound: float = FLAT_BOUND_MIB_PER_MIN,
) -> dict[str, Any]:
    """Per process: RSS (MiB) at start and end (median of the first and last window after the
    warm-up), the slope over window medians, the slope over the second half of them, and the
    verdict on the second half (``verdict``): a cache that fills and then stays bounded rises
    over the whole soak but not over its end; a leak rises over both."""
    warm = max(WINDOW_S, duration_s * WARMUP_FRACTION)
    out: dict[str, Any] = {}
    for name in sorted({r[1] for r in rss}):
        windows: dict[int, list[float]] = {}
        for t_ns, n, b in rss:
            s = (t_ns - t0_ns) / 1e9
            if n == name and s >= warm:
                windows.setdefault(int((s - warm) // WINDOW_S), []).append(b / MIB)
        pts = [(warm + (k + 0.5) * WINDOW_S, statistics.median(v))
               for k, v in sorted(windows.items())]  # fmt: skip
        slope, lo, hi, n_windows = slope_per_minute(pts)
        # the second half alone: memory that fills a bounded cache (a TTL) and then stays flat
        # rises over the whole soak but not over its end
        late, late_lo, late_hi, _ = slope_per_minute(pts[len(pts) // 2 :])
        out[name] = {
            "start_mib": round(pts[0][1], 2) if pts else None,
            "end_mib": round(pts[-1][1], 2) if pts else None,
            "slope_mib_per_min": round(slope, 4),
            "slope_ci95": [round(lo, 4), round(hi, 4)],
            "windows": n_windows,
            "late_slope_mib_per_min": round(late, 4),
            "late_slope_ci95": [round(late_lo, 4), round(late_hi, 4)],
            "late_windows": len(pts[len(pts) // 2 :]),
            "flat_bound_mib_per_min": bound,
            "verdict": verdict(late_lo, late_hi, bound),
        }
    return out


async def _soak_load(target: Target, load: UserLoad, recorder: Recorder, state: LoadState,
                     duration_s: float) -> None:  # fmt: skip
    await run_users(target, load, recorder, state, prefix=f"soak-{target.cell}",
                    duration_s=duration_s)  # fmt: skip


def soak_path(name: str, preset: str, minutes: float, load: UserLoad, run_dir: Path,
              sample_s: float, *, idempotency_max_keys: int = SOAK_IDEMPOTENCY_MAX_KEYS,
              sqlite_cache_kib: int = SOAK_SQLITE_CACHE_KIB,
              bound: float = FLAT_BOUND_MIB_PER_MIN) -> dict[str, Any]:  # fmt: skip
    # Imported before the sampler starts: pandas (read at the end) and the Parquet writer's
    # lazily imported parts (at the first flush) would otherwise be a step in the load
    # generator's memory inside the soak.
    import pandas as pd
    import pyarrow.compute  # noqa: F401

    from travelagent.realtime.idempotency import MAX_KEYS_ENV
    from travelagent.runner.experiment import resolve_scenario
    from travelagent.topology.launcher import Topology

    spec = PATHS[name]
    scenario = resolve_scenario(preset, spec["overrides"])
    cell_dir = run_dir / "cells" / name
    cell_dir.mkdir(parents=True, exist_ok=True)
    # small parts: records do not pile up in the load generator's memory over a soak
    recorder = Recorder(cell_dir, tag=f"soak-{name}", flush_every=500)
    state = LoadState()
    duration_s = minutes * 60
    env = {MAX_KEYS_ENV: str(idempotency_max_keys), CACHE_KIB_ENV: str(sqlite_cache_kib),
           DEDUP_MEMORY_ENV: str(SOAK_DEDUP_MEMORY)}  # fmt: skip
    health: dict[str, Any] = {}
    with Topology(scenario, run_dir=cell_dir / "topology", env=env) as topo:
        target = Target(
            arch=spec["arch"],
            url=topo.urls["gateway" if spec["arch"] == "gateway" else "realtime"],
            jwt_secret=topo.secrets[JWT_SECRET_ENV], run=run_dir.name, cell=name,
            publish=spec["overrides"].get("worker.publish", ""),
            stream=bool(scenario.worker.stream),
        )  # fmt: skip
        sampler = CpuSampler({**topo.pids, "load": os.getpid()}, interval_s=sample_s)
        t0 = time.time_ns()
        with sampler:
            asyncio.run(_soak_load(target, load, recorder, state, duration_s))
        crashes = [c.name for c in topo.crashes]
        for proc in ("worker", "realtime"):
            if f"{proc}_direct" in topo.urls:
                health[proc] = _healthz(topo.urls[f"{proc}_direct"] + "/healthz")
    recorder.close()
    finalize_run(cell_dir)
    with open(cell_dir / "rss.csv", "w") as fh:
        fh.write("t_ns,process,rss_bytes\n")
        fh.writelines(f"{t},{p},{b}\n" for t, p, b in sampler.rss)
    with open(cell_dir / "cpu.csv", "w") as fh:
        fh.write("t_ns,process,cpu_pct\n")
        fh.writelines(f"{t},{p},{c}\n" for t, p, c in sampler.samples)
    msgs = pd.read_parquet(cell_dir / "messages.parquet")
    statuses = {str(k): int(v) for k, v in msgs["status"].value_counts().items()}
    errors = msgs[msgs["status"] != "ok"]["error"].value_counts().head(5)
    return {
        "path": name,
        "preset": preset,
        "minutes": minutes,
        "users": load.users,
        "think_ms": load.think_ms,
        "messages": len(msgs),
        "rate_per_s": round(len(msgs) / duration_s, 1),
        "statuses": statuses,
        "errors": {str(k): int(v) for k, v in errors.items()},
        "connect_failures": dict(state.connect_failures),
        "crashed": crashes,
        "memory": memory_summary(sampler.rss, t0, duration_s, bound=bound),
        # what the caches held at the end (the realtime service's idempotency keys, ...)
        "healthz": health,
        "idempotency_max_keys": idempotency_max_keys,
        "sqlite_cache_kib": sqlite_cache_kib,
    }


def _healthz(url: str) -> dict[str, Any]:
    """A server's ``/healthz`` (its counters and cache sizes), or why it could not be read."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out
    except (OSError, ValueError) as err:
        return {"error": f"{type(err).__name__}: {err}"}


def render(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        bad = sum(v for k, v in r["statuses"].items() if k != "ok")
        crashed = f" crashed: {r['crashed']}" if r["crashed"] else ""
        lines.append(f"{r['path']}: {r['messages']} messages in {r['minutes']:g} min "
                     f"({r['rate_per_s']}/s, {r['users']} users), not ok: {bad} "
                     f"{r['statuses']}{crashed}")  # fmt: skip
        for err, n in r["errors"].items():
            lines.append(f"    {n} × {err}")
        lines.append(f"    {'process':<10} {'start MiB':>10} {'end MiB':>10} "
                     f"{'slope MiB/min [95% CI]':>34} windows  second half [95% CI] (windows)  "
                     f"verdict (flat: within ±{FLAT_BOUND_MIB_PER_MIN:g})")  # fmt: skip
        for proc, m in r["memory"].items():
            lo, hi = m["slope_ci95"]
            late_lo, late_hi = m["late_slope_ci95"]
            lines.append(f"    {proc:<10} {m['start_mib']!s:>10} {m['end_mib']!s:>10} "
                         f"{m['slope_mib_per_min']:>+12.4f} [{lo:+.4f}, {hi:+.4f}] "
                         f"{m['windows']:>5}  {m['late_slope_mib_per_min']:+.4f} "
                         f"[{late_lo:+.4f}, {late_hi:+.4f}] ({m['late_windows']})  "
                         f"{m['verdict']}")  # fmt: skip
        rt = r.get("healthz", {}).get("realtime", {})
        if "idempotency_keys" in rt:
            lines.append(f"    realtime idempotency keys at the end: {rt['idempotency_keys']} "
                         f"(cap {r['idempotency_max_keys']})")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m travelagent.runner.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--minutes", type=float, default=5.0, help="per path (default 5)")
    p.add_argument("--paths", default="gateway,rt-ws", help=f"of {', '.join(PATHS)}")
    p.add_argument("--preset", default="loopback", help="the scenario (default loopback)")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--think-ms", type=float, default=200.0)
    p.add_argument("--sample-s", type=float, default=1.0, help="RSS/CPU sampling interval")
    p.add_argument("--out", type=Path, default=None, help="run directory")
    p.add_argument("--flat-bound", type=float, default=FLAT_BOUND_MIB_PER_MIN,
                   help="memory is flat when its second-half slope's 95%% interval lies within "
                        f"± this, MiB/min (default {FLAT_BOUND_MIB_PER_MIN})")  # fmt: skip
    p.add_argument("--idempotency-max-keys", type=int, default=SOAK_IDEMPOTENCY_MAX_KEYS,
                   help="the realtime service's idempotency cap during the soak (default "
                        f"{SOAK_IDEMPOTENCY_MAX_KEYS:,}: full within the warm-up)")  # fmt: skip
    p.add_argument("--sqlite-cache-kib", type=int, default=SOAK_SQLITE_CACHE_KIB,
                   help="each SQLite connection's page cache during the soak (default "
                        f"{SOAK_SQLITE_CACHE_KIB} KiB: full within the warm-up)")  # fmt: skip
    args = p.parse_args(argv)
    paths = [x for x in args.paths.split(",") if x]
    unknown = [x for x in paths if x not in PATHS]
    if unknown or not paths:
        print(f"soak: unknown path(s) {unknown}; valid: {', '.join(PATHS)}", file=sys.stderr)
        return 2
    if not (
        args.minutes > 0
        and args.users >= 1
        and args.think_ms >= 0
        and args.sample_s > 0
        and args.flat_bound > 0
        and args.idempotency_max_keys >= 1
        and args.sqlite_cache_kib >= 1
    ):
        print("soak: --minutes, --sample-s and --flat-bound must be > 0, --users, "
              "--idempotency-max-keys and --sqlite-cache-kib >= 1, --think-ms >= 0",
              file=sys.stderr)  # fmt: skip
        return 2
    run_dir = args.out or Path("data/runs") / new_run_id("soak-")
    start_tracemalloc_from_env("load")  # a diagnostic, off unless its variable is set
    load = UserLoad(users=args.users, think_ms=args.think_ms, timeout_s=10.0, rotate_every=0)
    write_run_json(run_dir, {"kind": "soak", "started": iso_now(), "status": "running",
                             "settings": vars(args) | {"out": str(run_dir)}})  # fmt: skip
    print(f"soak: {', '.join(paths)}, {args.minutes:g} min each, into {run_dir}", file=sys.stderr)
    results = []
    for name in paths:
        results.append(soak_path(name, args.preset, args.minutes, load, run_dir, args.sample_s,
                                 idempotency_max_keys=args.idempotency_max_keys,
                                 sqlite_cache_kib=args.sqlite_cache_kib,
                                 bound=args.flat_bound))  # fmt: skip
        (run_dir / "soak.json").write_text(json.dumps(results, indent=2) + "\n")
    write_run_json(run_dir, {"status": "ok", "ended": iso_now(), "paths": results})
    print(render(results))
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
