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
# # 05 · The note's claims
#
# Each claim of the architecture note with a verdict computed from this run: the quantity it rests on with its 95% interval and n, against the claim's line. `confirmed` or `refuted` when the interval lies on one side, `inconclusive` when it straddles the line (with the data expected to decide it), `not tested` when the run lacks the cells. The rules are in docs/analysis.md.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import pandas as pd

from travelagent.analysis import (
    claims,
    figures,
    model,
    nbhelp,
)

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)

# %%
ct = claims.claims_table(run)
nbhelp.show(ct.drop(columns="numbers"))

# %% [markdown]
# ## Stability
#
# Each claim's verdict from each repetition alone, and from all pooled. A claim whose repetitions disagree is close to its line; the pooled interval carries that spread.

# %%
nbhelp.show(claims.stability_table(run))

# %% [markdown]
# ## The hop model against the measurement
#
# Predicted median service time (link delays along the path, set-up round trips of new connections, transfer time, and the measured LLM time) beside the measured median; the error is what the model does not know (processing, queueing, jitter).

# %%
mt = model.model_table(run)
nbhelp.show(mt, "Not in this run: no cells with link settings.")
if len(mt):
    figures.model_vs_measured(mt)

# %% [markdown]
# ## Leg by leg
#
# Each network leg's predicted one-way time beside its measured median.

# %%
nbhelp.show(model.model_legs(run), "Not in this run.", precision=2)
