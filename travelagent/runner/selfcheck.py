"""The instrument checks itself: was a cell's measurement disturbed by the testbed? Pure.

Per cell the runner collects what the machine was doing (``monitor.CpuSampler`` samples of every
topology process and of Locust, the event-loop lag the worker and the realtime service report
on ``/healthz``, each link's lateness against its schedule, Locust's own CPU warnings) and
``assess`` turns it into ``cells/<cell>/selfcheck.json``: the figures and a list of flags.

A flagged cell measured the testbed as much as the architecture. The report keeps flagged cells
out of verdicts and says so. The bounds, and why each is where it is:

- ``CPU_BUSY_PCT``: a process whose CPU use is at least this share of one core in 90 % of the
  samples taken while messages were in flight is saturated: its queue, not the path, sets the
  latency (all our servers are single-threaded event loops).
- ``LOOP_LAG_P99_MS``: a 99th-percentile event-loop lag above this means messages waited for
  the loop by an amount comparable to the effects the claims judge (the smallest margin of a
  "lowers" claim is a few milliseconds).
- ``LINK_LATE_P99_MS``: a link that releases data later than its schedule by more than this at
  the 99th percentile adds delay nobody configured, as much as the smallest margin a verdict
  uses (the hybrid's 5 ms). On an idle 2-core machine the links' lateness is about 0.05 ms at
  the median and 0.2-2.2 ms at the 99th percentile (highest in streamed cells, where every
  chunk crosses three links): such a tail moves a median by well under a millisecond. Judged
  only on a direction that carried at least ``LATE_MIN_CHUNKS`` chunks: the 99th percentile of
  fewer values is just their maximum.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

from travelagent.monitor import quantile

CPU_BUSY_PCT = 90.0
LOOP_LAG_P99_MS = 20.0
LINK_LATE_P99_MS = 5.0
LATE_MIN_CHUNKS = 100
LLM_LATE_P90_MS = 5.0
SEND_LATE_P90_MS = 5.0
LATE_MIN_VALUES = 20
LOCUST_CPU_WARNING = "CPU usage above"
# How the flags that say a message was held outside the servers begin (``assess`` writes them):
# a late link release or a late client send delays a message between processes, never the
# work timed inside one (the agent's model call, the worker's processing).
LINK_FLAG = "link "
SEND_FLAG = "the clients' sends"

BOUNDS = {
    "cpu_busy_pct": CPU_BUSY_PCT,
    "loop_lag_p99_ms": LOOP_LAG_P99_MS,
    "link_late_p99_ms": LINK_LATE_P99_MS,
    "llm_late_p90_ms": LLM_LATE_P90_MS,
    "send_late_p90_ms": SEND_LATE_P90_MS,
}


def cpu_summary(
    samples: Iterable[tuple[int, str, float]], window_ns: tuple[int, int] | None = None
) -> dict[str, dict[str, float]]:
    """Per process: n, p50, p90 and max of its CPU samples (% of one core) inside the window."""
    by: dict[str, list[float]] = {}
    for t_ns, name, pct in samples:
        if window_ns is not None and not window_ns[0] <= t_ns <= window_ns[1]:
            continue
        by.setdefault(name, []).append(pct)
    return {
        name: {
            "n": float(len(v)),
            "p50_pct": round(quantile(v, 0.5), 1),
            "p90_pct": round(quantile(v, 0.9), 1),
            "max_pct": round(max(v), 1),
        }
        for name, v in sorted(by.items())
    }


def send_lateness_ms(
    rows: Iterable[Mapping[str, Any]], *, open_loop: bool, think_ms: float = 0.0
) -> list[float]:
    """How late the clients sent each message (ms, clamped at 0), from the cell's records.

    Open loop: ``send_ns - intended_ns`` (the schedule is the due time). Closed loop: a user's
    next send is due ``think_ms`` after its previous reply, so the lateness is the gap from the
    previous ``recv_ns`` to the next ``send_ns`` less ``think_ms``; only after a reply that
    arrived (``ok``): after a failure the user reconnects first. A late client sends late
    whatever the path, and in a closed loop a late send delays no message's own latency, but
    it says the client's process (on this machine, every process's) was not run on time."""
    out: list[float] = []
    if open_loop:
        for r in rows:
            send, intended = r.get("send_ns"), r.get("intended_ns")
            if isinstance(send, int) and isinstance(intended, int):
                out.append(max((send - intended) / 1e6, 0.0))
        return out
    by_user: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if isinstance(r.get("send_ns"), int):
            by_user.setdefault(str(r.get("user")), []).append(r)
    for msgs in by_user.values():
        msgs.sort(key=lambda r: int(r["send_ns"]))
        for prev, nxt in itertools.pairwise(msgs):
            recv = prev.get("recv_ns")
            if prev.get("status") != "ok" or not isinstance(recv, int):
                continue
            out.append(max((int(nxt["send_ns"]) - recv) / 1e6 - think_ms, 0.0))
    return out


def lateness_summary(values: Iterable[float]) -> dict[str, float]:
    """n, p50, p90, p99 and max (ms) of lateness values."""
    v = [float(x) for x in values if isinstance(x, int | float) and math.isfinite(x)]
    if not v:
        return {"n": 0.0}
    return {
        "n": float(len(v)),
        "p50_ms": round(quantile(v, 0.5), 3),
        "p90_ms": round(quantile(v, 0.9), 3),
        "p99_ms": round(quantile(v, 0.99), 3),
        "max_ms": round(max(v), 3),
    }


def between_processes_only(flags: Iterable[str]) -> bool:
    """True when every flag is a link's or the clients' lateness (at least one flag): the cell's
    network legs met delay nobody configured, but what was timed inside one process (the
    model's answer, the worker's processing) ran undisturbed by it."""
    flags = [str(f) for f in flags if str(f)]
    return bool(flags) and all(f.startswith((LINK_FLAG, SEND_FLAG)) for f in flags)


def _number(x: Any) -> float:
    """``x`` as a finite float, else NaN (which no bound comparison flags)."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else math.nan


def assess(
    *,
    samples: Iterable[tuple[int, str, float]],
    window_ns: tuple[int, int] | None,
    health: Mapping[str, Mapping[str, Any]],
    links: Mapping[str, Any],
    locust_log: str = "",
    sampling: bool = True,
    llm_lateness: Iterable[float] = (),
    send_lateness: Iterable[float] = (),
) -> dict[str, Any]:
    """The cell's self-check: figures per process and link, and the flags they raise."""
    cpu = cpu_summary(samples, window_ns)
    flags: list[str] = []
    for name, s in cpu.items():
        if s["n"] >= 4 and s["p90_pct"] >= CPU_BUSY_PCT:
            flags.append(
                f"{name} near a full core (CPU p90 {s['p90_pct']:.0f}% >= {CPU_BUSY_PCT:.0f}%)"
            )
    lag: dict[str, Any] = {}
    for name, h in health.items():
        summary = h.get("loop_lag") if isinstance(h, Mapping) else None
        if not isinstance(summary, Mapping):
            lag[name] = {"error": str(h.get("error", "no loop lag reported"))}
            continue
        lag[name] = dict(summary)
        p99 = _number(summary.get("p99_ms"))
        if p99 > LOOP_LAG_P99_MS:
            flags.append(f"{name} event-loop lag p99 {p99:.1f} ms > {LOOP_LAG_P99_MS:g} ms")
    late: dict[str, Any] = {}
    for name, snap in sorted(links.items()):
        stats = snap.get("stats") if isinstance(snap, Mapping) else None
        if not isinstance(stats, Mapping):
            continue
        for direction in ("up", "down"):
            d = stats.get(direction)
            lateness = d.get("late") if isinstance(d, Mapping) else None
            if not isinstance(lateness, Mapping):
                continue
            late[f"{name}/{direction}"] = dict(lateness)
            p99 = _number(lateness.get("p99_ms"))
            if p99 > LINK_LATE_P99_MS and _number(lateness.get("n")) >= LATE_MIN_CHUNKS:
                flags.append(
                    f"{LINK_FLAG}{name} {direction} releases late: p99 {p99:.2f} ms "
                    f"> {LINK_LATE_P99_MS:g} ms"
                )
    timers: dict[str, dict[str, float]] = {}
    for key, values, bound, what in (
        ("llm_release", llm_lateness, LLM_LATE_P90_MS, "the simulated model's timed releases"),
        ("client_send", send_lateness, SEND_LATE_P90_MS, SEND_FLAG),
    ):
        summary = lateness_summary(values)
        timers[key] = summary
        p90 = _number(summary.get("p90_ms"))
        if p90 > bound and summary["n"] >= LATE_MIN_VALUES:
            flags.append(f"{what} late: p90 {p90:.2f} ms > {bound:g} ms over {summary['n']:.0f}")
    warnings = locust_log.count(LOCUST_CPU_WARNING)
    if warnings:
        flags.append(f"Locust warned of its own CPU use {warnings} time(s)")
    return {
        "bounds": BOUNDS,
        "window_ns": list(window_ns) if window_ns else None,
        "cpu_sampling": "every 250 ms from /proc" if sampling else "not available here",
        "cpu": cpu,
        "loop_lag": lag,
        "link_lateness": late,
        "timer_lateness": timers,
        "locust_cpu_warnings": warnings,
        "flags": flags,
        "flagged": bool(flags),
    }
