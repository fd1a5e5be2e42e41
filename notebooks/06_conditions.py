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
# # 06 · Conditions: the latency model and where each claim holds
#
# The latency model (`analysis/latency_model.py`) predicts each path's p50 and p90 from a scenario: link delays, jitter and set-up round trips, the processing measured on the fit cells, the LLM profile, and a streamed reply's publish drain. It is fitted on some measured cells and checked on others it never saw (held-out cells). On a conditions sweep (`make study`) the model then fills in the grid points nobody measured, and each claim gets a verdict at every point, with the conditions where a verdict changes stated in words.

# %% tags=["parameters"]
# Parameters (papermill): the run directory; None means the newest run in data/runs/,
# else data/reference/.
run_path = None

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from travelagent.analysis import claims_map, latency_model, nbhelp

pd.set_option("display.max_colwidth", 300)
run = nbhelp.open_run(run_path)

# %% [markdown]
# ## The model against the measurement
#
# One row per measured cell: the predicted and measured p50 and p90, and the error in % of the measured value. `held_out` cells were kept out of the fit (the split's rule is printed); their errors are the model's validation. A cell's p50 is predicted as the same statistic the cell measured: the sample median of its own messages (its users' first messages, the same questions), over replays. The measured p50's own 95% interval (`measured_p50_ci_low_ms`/`high`, distribution-free) says how well a small cell knows its p50: an error inside it (`within_ci`) is the measurement's, one outside it the model's. `most_off_component` names the hop whose predicted median is furthest from the stamped one.

# %%
rows, fit, rule = latency_model.model_rows(run) if len(run.ok()) else (pd.DataFrame(), None, "")
if rows.empty or "error_pct" not in rows:
    nbhelp.note("Not in this run: no measured cell the model can predict.")
else:
    nbhelp.note(f"Held out: {rule}. Fitted on {len(fit.cells) if fit else 0} cells.")
    nbhelp.show(latency_model.error_summary(rows), precision=2)
    cols = ["cell", "held_out", "flagged", "n", "measured_p50_ms", "predicted_p50_ms",
            "error_pct", "measured_p50_ci_low_ms", "measured_p50_ci_high_ms", "within_ci",
            "most_off_component", "most_off_ms", "measured_p90_ms", "predicted_p90_ms",
            "error_p90_pct", "measured_first_p50_ms", "predicted_first_p50_ms",
            "drain_ms"]  # fmt: skip
    nbhelp.show(rows[[c for c in cols if c in rows]], precision=1)

# %%
if not rows.empty and "error_pct" in rows:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for held, g in rows.groupby("held_out"):
        xerr = None
        if "measured_p50_ci_low_ms" in g:  # the measured p50's own 95% interval
            xerr = [g["measured_p50_ms"] - g["measured_p50_ci_low_ms"],
                    g["measured_p50_ci_high_ms"] - g["measured_p50_ms"]]  # fmt: skip
        ax.errorbar(g["measured_p50_ms"], g["predicted_p50_ms"], xerr=xerr, fmt="o", ms=4,
                    elinewidth=0.6, capsize=0,
                    label=f"{'held out' if held else 'fitted'} (n={len(g)} cells)")  # fmt: skip
    lim = [0, max(rows["measured_p50_ms"].max(), rows["predicted_p50_ms"].max()) * 1.05]
    ax.plot(lim, lim, color="grey", lw=0.8)
    ax.fill_between(lim, [x * 0.95 for x in lim], [x * 1.05 for x in lim], color="grey",
                    alpha=0.15, label="within 5%")  # fmt: skip
    ax.set_xscale("symlog", linthresh=100)
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xlabel("measured p50 (ms)")
    ax.set_ylabel("predicted p50 (ms)")
    ax.legend(fontsize=8)
    ax.set_title("Predicted vs measured p50 per cell (bars: measured 95% interval)")
    plt.show()

# %% [markdown]
# ## The claims map
#
# Each claim's verdict at every grid point: measured points (outlined, `M`) from their own cells' intervals, the others predicted by the model, whose effect interval widens each path's p50 by the worst error the model made on held-out cells of that path. Colours: green confirmed, red refuted, amber inconclusive, grey not tested.

# %%
grid = claims_map.run_grid(run)
cmap = pd.DataFrame()
if grid is None or fit is None:
    nbhelp.note("Not in this run: no conditions grid (`make study` runs the sweep).")
else:
    cmap = claims_map.claims_map(run, fit, grid)
    counts = cmap.groupby(["claim", "source", "verdict"]).size().unstack(fill_value=0)
    nbhelp.show(counts)

# %%
if not cmap.empty:
    for claim in cmap["claim"].unique():
        claims_map.heatmap(cmap, claim)
        plt.show()

# %% [markdown]
# ## Where a verdict changes
#
# Computed from the model along one axis (the worker-to-realtime RTT for comparisons, the client RTT for the ranges), the other fixed at each of its grid levels; the crossing is interpolated between model evaluations. Measured points above say whether the model's verdicts hold where it was checked.

# %%
if grid is not None and fit is not None:
    table = claims_map.crossover_table(fit, grid, claims_map.base_links(run))
    for sentence in claims_map.crossover_sentences(table):
        nbhelp.note("- " + sentence)
    if not cmap.empty:
        m = cmap[cmap["source"] == "measured"]
        nbhelp.show(m, precision=2)
