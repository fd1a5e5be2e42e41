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
# # 04 · Under load
#
# Each cell is one point: offered load (the rate of intended sends), throughput (completed replies per second), and percentiles of the service time and of the time corrected for coordinated omission. Cells that differ only in load form a series.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import pandas as pd

from travelagent.analysis import (
    figures,
    load,
    loadcurve,
    nbhelp,
)

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)

# %%
lt = loadcurve.load_table(run)
nbhelp.show(lt, precision=2)

# %% [markdown]
# ## Percentiles and throughput vs offered load
#
# Left: p50 and p99, service (dashed) and corrected (solid), log scale; a vertical line marks the knee (the corrected p99 doubles from the lightest point, or throughput falls under 90 % of the offered rate). Right: throughput; on the dotted diagonal every request is served as offered.

# %%
if len(lt) and lt.groupby("series").size().max() > 1:
    figures.load_curves(lt)
else:
    nbhelp.note("*Not in this run: no series with more than one load level.*")

# %% [markdown]
# ## Knees and tail growth
#
# Per series, the last load before the knee and the first past it; then how the tail grows relative to the median (p99.9 / p50) and how much the correction adds at p99.

# %%
nbhelp.show(loadcurve.knees(lt) if len(lt) else lt)
if len(lt):
    tail = lt[["cell", "series", "offered_rps"]].copy()
    tail["tail_ratio"] = lt["corrected_p99.9_ms"] / lt["corrected_p50_ms"]
    tail["correction_at_p99_ms"] = lt["corrected_p99_ms"] - lt["service_p99_ms"]
    nbhelp.show(tail, precision=2)

# %% [markdown]
# ## The heaviest cell of each series, second by second
#
# Percentiles per one-second window of intended send time (above) and the offered and completed rates (below): a ramp, a spike, or a queue that keeps growing shows here, where a whole-cell percentile would average it away.

# %%
if len(lt):
    heaviest = lt.sort_values("offered_rps").groupby("series").tail(1)
    for cell in heaviest["cell"]:
        figures.timeline(loadcurve.windows(run, cell), title=f"{cell} over time")
else:
    nbhelp.note("*No messages in this run.*")

# %% [markdown]
# ## Locust's own view
#
# Locust's summary per cell (requests, failures, its own percentiles), an independent check of the records above.

# %%
ls = load.locust_stats(run)
cols = [
    c
    for c in (
        "cell",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "99%",
        "Requests/s",
    )
    if c in ls
]
nbhelp.show(ls[cols] if len(ls) else ls, "Not in this run: no Locust CSV files.")
