"""Latency and throughput against offered load, and where the knee is.

Each cell is one point: offered load is the rate of intended sends (the open-loop schedule),
throughput the rate of completed replies. Cells that agree on every factor but the load form
a series (one line on the plot). The knee of a series is its first point where the corrected
p99 exceeds twice that of the series' lightest point, or throughput falls under 90 % of the
offered rate: past it, requests queue faster than they are served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from travelagent.analysis.load import FACTORS

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

KNEE_P99_FACTOR = 2.0
KNEE_THROUGHPUT_FRAC = 0.9


def _span_s(a: pd.Series, b: pd.Series) -> float:
    a = a.dropna().astype("int64")
    b = b.dropna().astype("int64")
    if a.empty or b.empty:
        return np.nan
    span = (int(b.max()) - int(a.min())) / 1e9
    return span if span > 0 else np.nan


def _label(factor: str, value: object, cells: pd.DataFrame) -> str:
    if factor == "streaming":
        return "streamed" if value else "unstreamed"
    if factor == "links":
        return f"links#{sorted(cells['links'].unique()).index(value)}"
    return str(value)


def _short_series(run: Run) -> list[str]:
    """Series labels naming only the factors that differ between cells of the run."""
    c = run.cells
    vary = [f for f in FACTORS if f not in ("load", "links") and c[f].nunique() > 1]
    if "links" in c and c["links"].nunique() > 1:
        vary.append("links")
    names = []
    for cell in run.messages["cell"].drop_duplicates():
        if cell in c.index:
            parts = [_label(f, c.loc[cell, f], c) for f in vary if c.loc[cell, f] != ""]
            names.append(" ".join(parts) or "all")
        else:
            names.append(str(cell))
    return names


def load_table(run: Run) -> pd.DataFrame:
    """One row per cell: series, users, offered and achieved rates, percentiles, error rate,
    and whether the point is at or past the series' knee."""
    rows = []
    for cell, m in run.messages.groupby("cell", sort=False):
        info = run.cells.loc[cell] if cell in run.cells.index else None
        ok = m[m["status"] == "ok"]
        n_int = len(m)
        offered_span = _span_s(m["intended_ns"], m["intended_ns"])
        offered = (n_int - 1) / offered_span if offered_span == offered_span else np.nan
        throughput = len(ok) / _span_s(m["send_ns"], ok["recv_ns"]) if len(ok) > 1 else np.nan
        row = {
            "cell": cell,
            "series": "",  # filled below, once all cells are known
            "users": info["users"] if info is not None else None,
            "offered_rps": offered,
            "throughput_rps": throughput,
            "messages": n_int,
            "error_rate": 1 - len(ok) / n_int if n_int else np.nan,
        }
        for metric in ("service_ms", "corrected_ms"):
            v = ok[metric].astype("float64").dropna().to_numpy()
            for p in (50, 99, 99.9):
                row[f"{metric[:-3]}_p{p:g}_ms"] = float(np.percentile(v, p)) if len(v) else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["series"] = _short_series(run)
    df = df.sort_values(["series", "offered_rps"], kind="stable").reset_index(drop=True)
    df["past_knee"] = False
    for _, g in df.groupby("series", sort=False):
        base = g["corrected_p99_ms"].iloc[0]
        past = (g["corrected_p99_ms"] > KNEE_P99_FACTOR * base) | (
            g["throughput_rps"] < KNEE_THROUGHPUT_FRAC * g["offered_rps"]
        )
        # once past the knee, stay past it (a noisy point beyond it does not undo it)
        df.loc[g.index, "past_knee"] = past.cummax()
    return df


def knees(table: pd.DataFrame) -> pd.DataFrame:
    """Per series: the last point before the knee and the first point past it (or none)."""
    rows = []
    for series, g in table.groupby("series", sort=False):
        past = g[g["past_knee"]]
        before = g[~g["past_knee"]]
        rows.append(
            {
                "series": series,
                "points": len(g),
                "last_ok_offered_rps": before["offered_rps"].max() if len(before) else np.nan,
                "knee_offered_rps": past["offered_rps"].iloc[0] if len(past) else np.nan,
                "knee_cell": past["cell"].iloc[0] if len(past) else "",
            }
        )
    return pd.DataFrame(rows)


def windows(run: Run, cell: str, *, window_s: float = 1.0) -> pd.DataFrame:
    """Per time window of one cell (by intended send time): offered and completed rates,
    active users, corrected and service percentiles. Shows ramps, spikes and tails growing
    within a cell whose load is not constant."""
    m = run.messages[run.messages["cell"] == cell]
    if m.empty:
        return pd.DataFrame()
    t0 = int(m["intended_ns"].min())
    win = ((m["intended_ns"].astype("int64") - t0) // int(window_s * 1e9)).astype(int)
    ok = m["status"] == "ok"
    rows = []
    m = m.assign(_window=win)
    for _, g in m.groupby("_window"):
        gok = g[ok.loc[g.index]]
        row = {
            "t_s": int(g["_window"].iloc[0]) * window_s,
            "offered_rps": len(g) / window_s,
            "ok_rps": len(gok) / window_s,
            "users": g["user"].nunique(),
            "errors": int((~ok.loc[g.index]).sum()),
        }
        for metric in ("service_ms", "corrected_ms"):
            v = gok[metric].astype("float64").dropna().to_numpy()
            for p in (50, 99):
                row[f"{metric[:-3]}_p{p}_ms"] = float(np.percentile(v, p)) if len(v) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
