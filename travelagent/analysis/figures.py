"""Figures for the notebooks and the report.

Every function returns a matplotlib ``Figure`` with labelled axes and units. Sizes and fonts
are chosen to read both in a browser and on paper (about 8 x 4.5 in, 10-11 pt, grid lines,
colours that survive greyscale thanks to distinct line styles and hatches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from travelagent.analysis.decompose import decompose_cells
from travelagent.analysis.stats import METRICS

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

CATEGORY_COLORS = {
    "network": "#4477aa",
    "http": "#66ccee",
    "llm": "#ee6677",
    "processing": "#bbbbbb",
}
LINESTYLES = ("-", "--", "-.", ":")
plt.rcParams.update(
    {"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
     "figure.dpi": 100, "savefig.dpi": 150, "figure.autolayout": True}
)  # fmt: skip


def _cells(run: Run, cells: Sequence[str] | None) -> list[str]:
    have = list(run.ok()["cell"].unique())
    return [c for c in (cells or have) if c in have]


def cdf(
    run: Run,
    metric: str = "service_ms",
    cells: Sequence[str] | None = None,
    *,
    log_x: bool = False,
    title: str | None = None,
) -> Figure:
    """Empirical CDF of ``metric`` per cell: the fraction of messages at or under each time."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ok = run.ok()
    for i, cell in enumerate(_cells(run, cells)):
        v = np.sort(ok.loc[ok["cell"] == cell, metric].astype("float64").dropna().to_numpy())
        if len(v) == 0:
            continue
        y = np.arange(1, len(v) + 1) / len(v)
        ax.step(v, y, where="post", label=f"{cell} (n={len(v)})",
                linestyle=LINESTYLES[(i // 10) % len(LINESTYLES)])  # fmt: skip
    ax.set_xlabel(f"{METRICS.get(metric, metric)} [ms]")
    ax.set_ylabel("fraction of messages")
    ax.set_ylim(0, 1.01)
    if log_x:
        ax.set_xscale("log")
    ax.set_title(title or f"CDF of {METRICS.get(metric, metric)}")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def percentile_intervals(table: pd.DataFrame, metric: str = "service_ms") -> Figure:
    """Percentiles per cell with their bootstrap intervals (from ``stats.latency_table``)."""
    t = table[table["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.45 * len(t) + 1)))
    ps = [c for c in ("p50", "p90", "p99", "p99.9") if c in t]
    y = np.arange(len(t))
    for j, p in enumerate(ps):
        x = t[p].to_numpy(dtype=float)
        err = np.vstack([x - t[f"{p}_lo"].to_numpy(float), t[f"{p}_hi"].to_numpy(float) - x])
        ax.errorbar(x, y + (j - 1.5) * 0.15, xerr=np.clip(err, 0, None), fmt="o", ms=4,
                    capsize=3, label=p)  # fmt: skip
    ax.set_yticks(y, t.iloc[:, 0].astype(str))
    ax.invert_yaxis()
    ax.set_xlabel(f"{METRICS.get(metric, metric)} [ms]")
    ax.set_title("Percentiles with 95% bootstrap intervals")
    ax.legend(fontsize=8)
    return fig


def waterfall(run: Run, msg_id: str, *, title: str | None = None) -> Figure:
    """One message's hops as bars on a time line from client.send: where the time goes."""
    h = run.hops[run.hops["msg_id"] == msg_id].sort_values("idx")
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(h) + 1.2)))
    if h.empty:
        ax.text(0.5, 0.5, "no stamps for this message", ha="center", transform=ax.transAxes)
        return fig
    t0 = int(h["start_ns"].iloc[0])
    start = (h["start_ns"].to_numpy() - t0) / 1e6
    dur = h["dur_ms"].to_numpy()
    cats = np.where(h["http"], "http", h["category"])
    colors = [CATEGORY_COLORS.get(c, "#999999") for c in cats]
    y = np.arange(len(h))
    ax.barh(y, dur, left=start, color=colors, edgecolor="black", linewidth=0.5)
    labels = [
        f"{hop} ({'net' if net else cat})"
        for hop, net, cat in zip(h["hop"], h["network"], h["category"], strict=True)
    ]
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    for yi, s, d in zip(y, start, dur, strict=True):
        ax.text(s + d, float(yi), f" {d:.1f}", va="center", fontsize=7)
    handles: list[Artist] = [plt.Rectangle((0, 0), 1, 1, color=c) for c in CATEGORY_COLORS.values()]
    names = list(CATEGORY_COLORS)
    m = run.messages[run.messages["msg_id"] == msg_id]
    # the first chunk, when it came before the whole reply (a streamed reply)
    if len(m) and pd.notna(m["ttfc_ms"].iloc[0]) and m["ttfc_ms"].iloc[0] < dur.sum() - 1e-3:
        handles.append(ax.axvline(float(m["ttfc_ms"].iloc[0]), color="black", linestyle=":"))
        names.append("first chunk")
    ax.set_xlabel("time since client.send [ms]")
    meta = h.iloc[0]
    ax.set_title(title or f"{meta['cell']}: one message, {len(h)} hops, {dur.sum():.1f} ms")
    ax.legend(handles, names, fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.12 - 0.6 / len(h)), ncols=5)  # fmt: skip
    return fig


def decomposition_bars(run: Run, cells: Sequence[str] | None = None) -> Figure:
    """Mean time per message split into network (HTTP legs apart), LLM and processing."""
    d = decompose_cells(run)
    if cells is not None:
        d = d[d["cell"].isin(cells)]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.45 * len(d) + 1.2)))
    parts = {
        "network": (d["network_ms"] - d["http_ms"]).to_numpy(float),
        "http": d["http_ms"].to_numpy(float),
        "llm": d["llm_ms"].to_numpy(float),
        "processing": d["processing_ms"].to_numpy(float),
    }
    labels = {"network": "network (other legs)", "http": "network (HTTP legs)", "llm": "LLM",
              "processing": "processing / queueing"}  # fmt: skip
    hatches = {"network": "", "http": "//", "llm": "..", "processing": "xx"}
    y = np.arange(len(d))
    left = np.zeros(len(d))
    for k, v in parts.items():
        ax.barh(y, v, left=left, color=CATEGORY_COLORS[k], hatch=hatches[k], label=labels[k],
                edgecolor="black", linewidth=0.5)  # fmt: skip
        left += v
    for yi, tot in zip(y, left, strict=True):
        ax.text(tot, float(yi), f" {tot:.1f}", va="center", fontsize=8)
    ax.set_yticks(y, d["cell"].astype(str))
    ax.invert_yaxis()
    ax.set_xlabel("mean time per message [ms] (parts add up to the mean service time)")
    ax.set_title("Where the time goes")
    # beside the axes, not over the longest bars
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def load_curves(table: pd.DataFrame) -> Figure:
    """Percentiles (service and corrected) and throughput against offered load, per series.

    Colour is the series, line style the statistic; both legends sit below the axes so the
    curves stay visible however many series there are.
    """
    sizes = table.groupby("series", sort=False).size()
    table = table[table["series"].isin(sizes[sizes > 1].index)]  # a curve needs two points
    n_series = table["series"].nunique()
    rows = (n_series + 1) // 2  # of the series legend, in two columns below the axes
    height_in = 4.5 + 0.25 * rows
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height_in))
    series_handles = []
    for i, (series, g) in enumerate(table.groupby("series", sort=False)):
        x = g["offered_rps"].to_numpy(float)
        color = f"C{i % 10}"
        ax1.plot(x, g["corrected_p99_ms"], "s-", color=color)
        ax1.plot(x, g["service_p99_ms"], "o--", color=color)
        ax1.plot(x, g["service_p50_ms"], ":", color=color)
        past = g[g["past_knee"]]
        if len(past):
            ax1.axvline(float(past["offered_rps"].iloc[0]), color=color, alpha=0.4)
        (line,) = ax2.plot(x, g["throughput_rps"], "o-", color=color)
        series_handles.append((line, str(series)))
    lim = np.nanmax(table["offered_rps"].to_numpy(float)) if len(table) else 1.0
    (diag,) = ax2.plot([0, lim], [0, lim], color="grey", linestyle=":")
    ax1.set_xlabel("offered load [requests/s]")
    ax1.set_ylabel("latency [ms]")
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(ScalarFormatter())
    ax1.yaxis.set_minor_formatter(ScalarFormatter())
    ax1.set_title("Latency vs offered load (vertical line: knee)")
    styles = [
        plt.Line2D([], [], color="black", marker="s", linestyle="-"),
        plt.Line2D([], [], color="black", marker="o", linestyle="--"),
        plt.Line2D([], [], color="black", linestyle=":"),
    ]
    ax1.legend(styles, ["p99 corrected", "p99 service", "p50 service"], fontsize=8)
    ax2.set_xlabel("offered load [requests/s]")
    ax2.set_ylabel("throughput [replies/s]")
    ax2.set_title("Throughput vs offered load")
    ax2.legend([diag], ["throughput = offered"], fontsize=8, loc="upper left")
    if series_handles:
        fig.legend([h for h, _ in series_handles], [n for _, n in series_handles], fontsize=8,
                   loc="lower center", ncols=2, frameon=False)  # fmt: skip
        fig.set_layout_engine("none")
        fig.subplots_adjust(bottom=(0.8 + 0.25 * rows) / height_in, top=0.92, wspace=0.25)
    return fig


def model_vs_measured(table: pd.DataFrame) -> Figure:
    """Hop model prediction against the measured median, one point per cell."""
    fig, ax = plt.subplots(figsize=(6, 5))
    if table.empty:
        ax.text(0.5, 0.5, "no cells with link settings", ha="center", transform=ax.transAxes)
        return fig
    x = table["predicted_ms"].to_numpy(float)
    y = table["measured_p50_ms"].to_numpy(float)
    streamed = table["streaming"].astype(bool).to_numpy()
    for i, (arch, marker) in enumerate((("gateway", "o"), ("realtime", "s"), ("hybrid", "^"))):
        on_path = (table["arch"] == arch).to_numpy()
        for s, fill in ((False, f"C{i}"), (True, "none")):  # streamed cells: hollow markers
            m = on_path & (streamed == s)
            if m.any():
                ax.scatter(x[m], y[m], marker=marker, s=40, facecolors=fill, edgecolors=f"C{i}",
                           label=f"{arch}{', streamed' if s else ''}")  # fmt: skip
    if len(table) <= 10:  # beyond that, labels pile up: the table beside the figure names them
        for xi, yi, c in zip(x, y, table["cell"], strict=True):
            ax.annotate(str(c), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    both = np.r_[x, y]
    lo, hi = float(np.nanmin(both)) * 0.9, float(np.nanmax(both)) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", label="measured = predicted")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("predicted median [ms]")
    ax.set_ylabel("measured median service time [ms]")
    ax.set_title("Hop model vs measurement")
    ax.legend(fontsize=8)
    return fig


def first_chunk_vs_complete(run: Run, cells: Sequence[str] | None = None) -> Figure:
    """Streaming cells: CDF of the time to the first chunk beside the time to the whole reply."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ok = run.ok()
    for i, cell in enumerate(_cells(run, cells)):
        m = ok[ok["cell"] == cell]
        color = f"C{i % 10}"
        for metric, style, what in (("ttfc_ms", "--", "first chunk"), ("service_ms", "-",
                                                                        "complete")):  # fmt: skip
            v = np.sort(m[metric].astype("float64").dropna().to_numpy())
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", color=color,
                        linestyle=style, label=f"{cell}: {what}")  # fmt: skip
    ax.set_xlabel("time since send [ms]")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Time to first chunk (dashed) vs time to complete reply (solid)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def timeline(win: pd.DataFrame, *, title: str = "") -> Figure:
    """One cell over time (from ``loadcurve.windows``): latency percentiles above, offered and
    completed rates below, so a tail that grows with the load is seen where it happens."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    if win.empty:
        ax1.text(0.5, 0.5, "no messages", ha="center", transform=ax1.transAxes)
        return fig
    x = win["t_s"].to_numpy(float)
    ax1.plot(x, win["corrected_p99_ms"], "s-", label="p99 corrected")
    ax1.plot(x, win["service_p99_ms"], "o--", label="p99 service")
    ax1.plot(x, win["service_p50_ms"], ":", label="p50 service")
    ax1.set_ylabel("latency [ms]")
    ax1.legend(fontsize=8)
    ax1.set_title(title or "Latency and load over time")
    ax2.plot(x, win["offered_rps"], "o-", label="offered (intended sends)")
    ax2.plot(x, win["ok_rps"], "s--", label="completed ok")
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("rate [messages/s]")
    ax2.set_xlabel("time since the cell's first intended send [s]")
    ax2.legend(fontsize=8)
    return fig
