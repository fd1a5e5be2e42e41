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
# # 01 · Hops on each path
#
# How many network hops does a message take on the gateway and on the realtime path? The counts below come from the stamps each component adds (a hop is the interval between two consecutive stamps; a network hop joins stamps of two different processes), not from the architecture note.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import pandas as pd

from travelagent.analysis import (
    decompose,
    figures,
    hops,
    nbhelp,
)

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)

# %% [markdown]
# ## Hop counts per path
#
# `network_hops`: one-way legs on the message's path. `http_exchanges`: those legs that are HTTP requests (the webhook POST; the publish unless it rides a socket) whose response crosses the network once more. `traversals` = both, the count the note's 2-3 and 5-6 refer to. Only messages carrying every stamp of their path are counted.

# %%
counts = hops.hop_counts(run)
nbhelp.show(counts, "No fully stamped messages in this run: hops cannot be counted.")

# %% [markdown]
# ## Each path as a waterfall
#
# One message per path (the one with the median service time, lightest load). Each bar is a hop, placed at its start time; colour says network (HTTP legs lighter), LLM or processing; the number is its duration in ms. A dotted line marks the first chunk of a streamed reply.

# %%
cells = nbhelp.path_cells(run)
if not cells:
    nbhelp.note("*No ok messages in this run.*")
for cell in cells:
    msg = hops.example_message(run, cell)
    if msg is None:
        nbhelp.note(f"*{cell}: no stamped messages.*")
        continue
    figures.waterfall(run, msg)

# %% [markdown]
# ## Mean duration of each hop
#
# Mean and median ms of every hop, by position on the path, over all messages of each of those cells.

# %%
dh = decompose.decompose_hops(run)
nbhelp.show(dh[dh["cell"].isin(cells)], precision=2)
