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
# # 02 · Gateway vs realtime
#
# The two paths side by side at the lightest load: distributions, percentiles with bootstrap intervals, and where the time goes.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import pandas as pd

from travelagent.analysis import (
    compare,
    decompose,
    figures,
    nbhelp,
    stats,
)

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)

# %% [markdown]
# ## Distributions
#
# Empirical CDF of the service time (`recv - send`, the whole reply) of one cell per path (unstreamed where the run has it, lightest load). A curve further left is faster; the gap between curves at a height is the difference at that percentile.

# %%
cells = nbhelp.path_cells(run)
if cells:
    figures.cdf(run, "service_ms", cells)
else:
    nbhelp.note("*No ok messages in this run.*")

# %% [markdown]
# ## Percentiles with 95 % bootstrap intervals
#
# Service time beside the time corrected for coordinated omission (`recv - intended`): when the load generator falls behind its schedule, the corrected time counts the wait the uncorrected one hides. `n` is the number of samples; a p99.9 of fewer than ~1000 samples is close to the maximum.

# %%
table = stats.latency_table(run)
nbhelp.show(table[table["cell"].isin(cells)] if len(table) else table)
if len(table) and cells:
    figures.percentile_intervals(table[table["cell"].isin(cells)], "service_ms")

# %% [markdown]
# ## The difference
#
# How much lower the gateway is than the realtime path under equal conditions (same streaming, LLM, links, load): the same comparison the claim "the gateway has lower latency" rests on. Where the two cells' messages pair up (user k asked the same question with the same LLM timings), the gain is the median of per-message differences of the service time; otherwise the difference of medians of the time outside the LLM. `base_metric`/`variant_metric` name what was compared, `paired` says which; the interval resamples repetitions, then messages.

# %%
pair = compare.find_pair(
    run, compare.REALTIME_BASELINES, {"arch": "gateway"}, ignore=("publish", "webhook_mode")
)
if pair is None:
    nbhelp.note("*Not in this run: no gateway and realtime cells under equal conditions.*")
else:
    diff = compare.compare_cells(run, *pair, base_metric=compare.OVERHEAD)
    cols = ["base_cell", "variant_cell", "base_metric", "variant_metric", "paired", "gain_ms",
            "gain_lo_ms", "gain_hi_ms", "n_base", "n_variant", "n_pairs",
            "base_service_p50_ms", "variant_service_p50_ms"]  # fmt: skip
    nbhelp.show(pd.DataFrame([diff])[cols])

# %% [markdown]
# ## Where the time goes
#
# Mean time per message split into network legs (HTTP legs hatched), the LLM (`agent.start` to `llm.done`) and processing/queueing (everything else). The parts of each message add up to its service time exactly; means of parts add up to the mean.

# %%
if cells:
    figures.decomposition_bars(run, cells)
dc = decompose.decompose_cells(run)
nbhelp.show(dc[dc["cell"].isin(cells)], "No stamped messages in this run.")
