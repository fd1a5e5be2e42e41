"""Load to saturation: the knee of each path's load curve, and which process ran out first.

- ``knee``: along increasing offered load, the first point where the servers stop keeping up:
  completed replies under ``THROUGHPUT_FRAC`` (85 %) of the offered rate, or the corrected p50
  above ``P50_FACTOR`` (2x) the lightest point's. Not ``analysis.loadcurve``'s 90 % and p99:
  with 6 s cells of Poisson arrivals the throughput estimate moves by about 6 % and the
  lightest point's p99 is set by the start-up burst (every user's first message creating its
  agent at once), so those rules call a knee at the first point. The knee is reported as the
  last point that kept up and the first that did not, with the offered rate between them where
  throughput crosses the line (linear interpolation), and the most throughput any point
  sustained.
- ``cpu_table``: per cell and process, the CPU samples of the self-check (``cells/<cell>/
  cpu.csv``, % of one core, every 250 ms) inside the cell's window (``selfcheck.json``).
- ``first_saturated``: per series, the process that first reached ``BUSY_PCT`` of a core at
  its p90 as the offered load grew (all our servers are single-threaded event loops, so a
  process at a full core is the one whose queue sets the latency), or the busiest at the
  heaviest point if none did.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.analysis.loadcurve import load_table

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

BUSY_PCT = 90.0
THROUGHPUT_FRAC = 0.85
P50_FACTOR = 2.0


def knee(
    offered: Any, throughput: Any, latency: Any, *, factor: float = P50_FACTOR,
    frac: float = THROUGHPUT_FRAC,
) -> dict[str, float]:  # fmt: skip
    """The knee of one load curve (points in any order); ``latency`` is a percentile per point
    (the corrected p50 in ``knees``) compared with ``factor`` times the lightest point's."""
    o = np.asarray(offered, dtype=float)
    order = np.argsort(o)
    o = o[order]
    t = np.asarray(throughput, dtype=float)[order]
    p = np.asarray(latency, dtype=float)[order]
    out = {"last_ok_rps": math.nan, "first_past_rps": math.nan, "knee_rps": math.nan,
           "max_throughput_rps": float(np.nanmax(t)) if len(t) else math.nan,
           "points": float(len(o))}  # fmt: skip
    if not len(o):
        return out
    past = (t < frac * o) | (p > factor * p[0])
    past = np.maximum.accumulate(past)  # once past the knee, stay past it
    if not past.any():
        out["last_ok_rps"] = float(o[-1])
        return out
    i = int(np.argmax(past))
    out["first_past_rps"] = float(o[i])
    if i == 0:
        out["knee_rps"] = float(o[0])
        return out
    out["last_ok_rps"] = float(o[i - 1])
    # where throughput / offered crosses the line, between the two points
    r0, r1 = t[i - 1] / o[i - 1] - frac, t[i] / o[i] - frac
    if r0 >= 0 > r1:
        out["knee_rps"] = float(o[i - 1] + r0 / (r0 - r1) * (o[i] - o[i - 1]))
    else:  # the latency rule fired first: the knee lies between the two points
        out["knee_rps"] = float((o[i - 1] + o[i]) / 2)
    return out


def series_name(cell: str) -> str:
    """A load study's series: the cell name before its rate shape (``gateway-r120-6s``)."""
    m = re.search(r"-r\d+(?:\.\d+)?-", cell)
    return cell[: m.start()] if m else cell


def load_points(run: Run) -> pd.DataFrame:
    """Per cell: series (path), offered and achieved rates, percentiles, error rate."""
    t = load_table(run)
    if t.empty:
        return t
    t = t.assign(series=[series_name(str(c)) for c in t["cell"]])
    return t.sort_values(["series", "offered_rps"], kind="stable").reset_index(drop=True)


def knees(points: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for series, g in points.groupby("series", sort=False):
        k = knee(g["offered_rps"], g["throughput_rps"], g["corrected_p50_ms"])
        rows.append({"series": series, **k})
    return pd.DataFrame(rows)


def cpu_table(run: Run) -> pd.DataFrame:
    """Per cell and process: p50, p90 and max CPU (% of one core) inside the cell's window."""
    rows = []
    for cell in run.cells["cell"].astype(str):
        d = run.path / "cells" / cell
        csv = d / "cpu.csv"
        if not csv.exists():
            continue
        s = pd.read_csv(csv)
        try:
            lo, hi = json.loads((d / "selfcheck.json").read_text())["window_ns"]
            s = s[(s["t_ns"] >= lo) & (s["t_ns"] <= hi)]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no window: all samples
        for proc, g in s.groupby("process"):
            v = g["cpu_pct"].astype(float)
            rows.append({"cell": cell, "process": str(proc), "n": len(v),
                         "p50_pct": float(v.median()), "p90_pct": float(v.quantile(0.9)),
                         "max_pct": float(v.max())})  # fmt: skip
    return pd.DataFrame(rows, columns=["cell", "process", "n", "p50_pct", "p90_pct", "max_pct"])


def first_saturated(points: pd.DataFrame, cpu: pd.DataFrame) -> pd.DataFrame:
    """Per series: the process that first reached ``BUSY_PCT`` at p90, at which offered load."""
    rows = []
    for series, g in points.groupby("series", sort=False):
        g = g.sort_values("offered_rps")
        found: dict[str, Any] = {"series": series, "process": "", "at_offered_rps": math.nan,
                                 "p90_pct": math.nan, "how": ""}  # fmt: skip
        for cell, offered in zip(g["cell"], g["offered_rps"], strict=True):
            c = cpu[(cpu["cell"] == cell) & (cpu["p90_pct"] >= BUSY_PCT)]
            if len(c):
                top = c.sort_values("p90_pct", ascending=False).iloc[0]
                found.update(process=top["process"], at_offered_rps=float(offered),
                             p90_pct=float(top["p90_pct"]),
                             how=f"first at >= {BUSY_PCT:g}% of a core (p90)")  # fmt: skip
                break
        if not found["process"] and len(g):
            last = g.iloc[-1]["cell"]
            c = cpu[cpu["cell"] == last].sort_values("p90_pct", ascending=False)
            if len(c):
                found.update(process=c.iloc[0]["process"], p90_pct=float(c.iloc[0]["p90_pct"]))
                found["at_offered_rps"] = float(g.iloc[-1]["offered_rps"])
                found["how"] = f"none reached {BUSY_PCT:g}%: the busiest at the heaviest point"
        rows.append(found)
    return pd.DataFrame(rows)


def queue_hops(run: Run, points: pd.DataFrame, kn: pd.DataFrame) -> pd.DataFrame:
    """Per series: the hops whose median grew the most from the lightest point to the first
    point past the knee (where the queue formed when no process was at a full core)."""
    rows = []
    hops = run.hops
    for series, g in points.groupby("series", sort=False):
        k = kn[kn["series"] == series]
        past = k["first_past_rps"].iloc[0] if len(k) else math.nan
        g = g.sort_values("offered_rps")
        if not len(g) or past != past:
            continue
        light = str(g.iloc[0]["cell"])
        heavy = str(g[g["offered_rps"] >= past].iloc[0]["cell"])
        med = hops[hops["cell"].isin([light, heavy])].groupby(["hop", "cell"])["dur_ms"].median()
        table = med.unstack()
        if light not in table or heavy not in table:
            continue
        lo: dict[str, float] = {str(k): float(v) for k, v in table[light].items()}
        hi: dict[str, float] = {str(k): float(v) for k, v in table[heavy].items()}
        grew = sorted(lo, key=lambda h: hi[h] - lo[h], reverse=True)
        for hop in grew[:3]:
            rows.append({"series": series, "hop": hop, "light_p50_ms": lo[hop],
                         "past_knee_p50_ms": hi[hop], "grew_ms": hi[hop] - lo[hop],
                         "light_cell": light, "past_knee_cell": heavy})  # fmt: skip
    return pd.DataFrame(rows)


def is_load_study(run: Run) -> bool:
    """Open-loop cells at three or more offered rates on one path."""
    pts = load_points(run)
    if pts.empty or "offered_rps" not in pts:
        return False
    return bool((pts.groupby("series")["offered_rps"].nunique() >= 3).any())
