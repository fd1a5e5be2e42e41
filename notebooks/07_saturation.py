# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Load to saturation
#
# An open-loop arrival rate stepped up on each path (`make load-study`, `loadtests/experiments/load.toml`) until the replies stop keeping up: latency percentiles and throughput against the offered load, the knee (computed: throughput under 85% of the offered rate, or the corrected p50 over twice the lightest point's; `analysis/saturation.py` says why not loadcurve's 90% and p99), and which process ran out of CPU first (the self-check's samples, % of one core).

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from travelagent.analysis import nbhelp, saturation

run = nbhelp.open_run(run_path)
study = len(run.ok()) > 0 and saturation.is_load_study(run)
if not study:
    nbhelp.note(
        "Not in this run: no path was run at three or more offered rates (`make load-study` runs the load study)."
    )

# %%
points = saturation.load_points(run) if study else pd.DataFrame()
if study:
    cols = ["series", "cell", "users", "offered_rps", "throughput_rps", "error_rate", "service_p50_ms",
            "corrected_p50_ms", "corrected_p99_ms", "past_knee"]  # fmt: skip
    nbhelp.show(points[[c for c in cols if c in points]], precision=1)

# %% [markdown]
# ## Latency and throughput against offered load
#
# Left: the corrected latency (from the intended send time, so waiting to be sent counts) at p50 and p99. Right: completed replies per second against the offered rate; the dashed line is "keeping up". The vertical line marks each path's knee.

# %%
if study:
    kn = saturation.knees(points)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for series, g in points.groupby("series", sort=False):
        (line,) = ax1.plot(
            g["offered_rps"], g["corrected_p50_ms"], marker="o", label=f"{series} p50"
        )
        ax1.plot(g["offered_rps"], g["corrected_p99_ms"], marker="^", ls="--", color=line.get_color(),
                 label=f"{series} p99")  # fmt: skip
        ax2.plot(
            g["offered_rps"], g["throughput_rps"], marker="o", color=line.get_color(), label=series
        )
        k = kn[kn["series"] == series]["knee_rps"]
        if len(k) and k.iloc[0] == k.iloc[0]:
            for ax in (ax1, ax2):
                ax.axvline(float(k.iloc[0]), color=line.get_color(), lw=0.8, alpha=0.6)
    top = float(points["offered_rps"].max()) * 1.05
    ax2.plot([0, top], [0, top], ls=":", color="grey", label="throughput = offered")
    ax1.set_yscale("log")
    ax1.set_xlabel("offered load (messages/s)")
    ax1.set_ylabel("corrected latency (ms)")
    ax2.set_xlabel("offered load (messages/s)")
    ax2.set_ylabel("replies/s")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    plt.show()
    nbhelp.show(kn, precision=1)

# %% [markdown]
# ## Which process ran out first
#
# CPU per process (p90 of the 250 ms samples inside each cell's window, % of one core) against the offered load. A single-threaded server at a full core is the one whose queue sets the latency.

# %%
if study:
    cpu = saturation.cpu_table(run)
    merged = cpu.merge(points[["cell", "series", "offered_rps"]], on="cell")
    series_list = list(dict.fromkeys(points["series"]))
    fig, axes = plt.subplots(
        1, len(series_list), figsize=(5.5 * len(series_list), 3.6), squeeze=False
    )
    for ax, series in zip(axes[0], series_list, strict=False):
        g = merged[merged["series"] == series]
        for proc, gp in g.groupby("process"):
            gp = gp.sort_values("offered_rps")
            ax.plot(gp["offered_rps"], gp["p90_pct"], marker="o", label=str(proc))
        ax.axhline(saturation.BUSY_PCT, color="grey", ls=":", lw=0.8)
        ax.set_title(series)
        ax.set_xlabel("offered load (messages/s)")
        ax.set_ylabel("CPU p90 (% of one core)")
        ax.legend(fontsize=7)
    plt.show()
    first = saturation.first_saturated(points, cpu)
    nbhelp.show(first, precision=1)
    for r in first.to_dict("records"):
        k = kn[kn["series"] == r["series"]].iloc[0]
        nbhelp.note(
            f"- **{r['series']}**: knee at about {k['knee_rps']:.0f} messages/s offered (kept up at "
            f"{k['last_ok_rps']:.0f}, not at {k['first_past_rps']:.0f}; at most {k['max_throughput_rps']:.0f} "
            f"replies/s); the process that ran out first: **{r['process']}** ({r['p90_pct']:.0f}% at "
            f"{r['at_offered_rps']:.0f} messages/s; {r['how']})."
        )

# %% [markdown]
# ## Where the queue formed
#
# The hops whose median grew the most from the lightest point to the first point past the knee: when no process is at a full core, this says which stage the messages waited in (a turn waiting for its agent's store, the commit, a link).

# %%
if study:
    nbhelp.show(saturation.queue_hops(run, points, kn), precision=1)
