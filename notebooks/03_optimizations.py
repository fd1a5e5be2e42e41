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
# # 03 · The note's optimizations, each against its baseline
#
# Publish modes (new HTTP connection, pooled HTTP, persistent socket), streaming, the webhook mode, and the hybrid. Each comparison pairs two cells that differ only in the option, at the lightest load; `gain_ms` is baseline median minus variant median (positive: the option helps) with its 95 % bootstrap interval.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import pandas as pd

from travelagent.analysis import (
    compare,
    figures,
    nbhelp,
    stats,
)

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)

# %%
opt = compare.optimizations_table(run)
nbhelp.show(opt)


# %% [markdown]
# ## Publish modes
#
# CDFs of the realtime path with each publish mode (unstreamed cells, or the streamed ones when that is all the run has).


# %%
def realtime_cells(streaming: bool) -> list[str]:
    return [
        c
        for c in nbhelp.representative_cells(run, streaming=streaming)
        if run.cells.loc[c, "arch"] == "realtime"
    ]


pub = realtime_cells(False)
if len(pub) < 2:
    pub = realtime_cells(True)
if len({run.cells.loc[c, "publish"] for c in pub}) > 1:
    figures.cdf(run, "service_ms", pub, title="Realtime path by publish mode")
else:
    nbhelp.note("*Not in this run: fewer than two publish modes.*")

# %% [markdown]
# ## Streaming: first chunk vs complete reply
#
# Dashed: time to the first chunk (what a user perceives as the answer starting); solid: time to the whole reply.

# %%
streamed = nbhelp.cells_where(run, streaming=True)
if streamed:
    figures.first_chunk_vs_complete(run, streamed)
else:
    nbhelp.note("*Not in this run: no streaming cells.*")

# %% [markdown]
# Percentiles of both, with intervals, for the streamed cells: `ttfc_ms` is the time to the first chunk, `service_ms` the time to the complete reply.

# %%
if streamed:
    tt = stats.latency_table(run, ("ttfc_ms", "service_ms"))
    nbhelp.show(tt[tt["cell"].isin(streamed)])

# %% [markdown]
# ## Webhook modes
#
# Reply after publishing vs acknowledge the webhook first.

# %%
wh = nbhelp.cells_where(run, arch="realtime", streaming=False)
modes = {run.cells.loc[c, "webhook_mode"] for c in wh}
if len(modes) > 1:
    figures.cdf(run, "service_ms", wh, title="Realtime path by webhook mode")
else:
    nbhelp.note("*Not in this run: a single webhook mode.*")

# %% [markdown]
# ## Hybrid vs gateway
#
# The hybrid sends agent traffic over the gateway while presence and rooms ride the realtime service; its agent latency should match the gateway's.

# %%
pair = compare.find_pair(run, [{"arch": "gateway"}], {"arch": "hybrid"})
if pair:
    figures.cdf(run, "service_ms", list(pair), title="Hybrid vs gateway")
else:
    nbhelp.note("*Not in this run: no hybrid cell paired with a gateway cell.*")
