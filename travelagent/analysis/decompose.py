"""Latency decomposition: how much of each message's end to end each hop and category takes.

Per message the hops telescope from ``send_ns`` to ``recv_ns`` (see ``hops``), so the parts add
up to the service time exactly, in integer nanoseconds. Aggregates use means, because means
add up (the mean of sums is the sum of means) and medians do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

CATEGORIES = ("network", "llm", "processing")


def decompose_messages(run: Run) -> pd.DataFrame:
    """One row per ok message with stamps: ``network_ns``, ``llm_ns``, ``processing_ns``,
    ``total_ns`` (= recv - send) and the same in ms, plus ``http_ns`` (HTTP legs, a part of
    network)."""
    if "decompose" in run._cache:  # several claims and figures ask for it
        cached: pd.DataFrame = run._cache["decompose"]
        return cached
    run._cache["decompose"] = out = _decompose_messages(run)
    return out


def _decompose_messages(run: Run) -> pd.DataFrame:
    hops = run.hops
    cols = ["msg_id", "cell", "arch", "publish", "streaming"]
    if hops.empty:
        return pd.DataFrame(
            columns=[*cols, *(f"{c}_ns" for c in CATEGORIES), "http_ns", "total_ns"]
        )
    by_cat = hops.pivot_table(
        index="msg_id", columns="category", values="dur_ns", aggfunc="sum", fill_value=0
    )
    for c in CATEGORIES:
        if c not in by_cat:
            by_cat[c] = 0
    out = by_cat[list(CATEGORIES)].astype("int64").add_suffix("_ns")
    out["http_ns"] = hops[hops["http"]].groupby("msg_id")["dur_ns"].sum()
    out["http_ns"] = out["http_ns"].fillna(0).astype("int64")
    out["total_ns"] = hops.groupby("msg_id")["dur_ns"].sum().astype("int64")
    meta = hops.drop_duplicates("msg_id").set_index("msg_id")[cols[1:]]
    out = out.join(meta).reset_index()
    for c in (*CATEGORIES, "http", "total"):
        out[f"{c}_ms"] = out[f"{c}_ns"] / 1e6
    return out


def decompose_cells(run: Run) -> pd.DataFrame:
    """Mean ms per category and cell; the categories' means add up to ``total_ms``."""
    per = decompose_messages(run)
    if per.empty:
        return pd.DataFrame(columns=["cell", *(f"{c}_ms" for c in CATEGORIES), "total_ms"])
    cols = [*(f"{c}_ms" for c in CATEGORIES), "http_ms", "total_ms"]
    agg = per.groupby("cell", sort=False)[cols].mean()
    agg["messages"] = per.groupby("cell", sort=False).size()
    for c in CATEGORIES:
        agg[f"{c}_share"] = agg[f"{c}_ms"] / agg["total_ms"]
    # in the run's own cell order, so tables and figures read like the experiment
    order = [c for c in run.cells.index if c in agg.index]
    order += [c for c in agg.index if c not in order]
    return agg.loc[order].reset_index()


def decompose_hops(run: Run) -> pd.DataFrame:
    """Mean ms per hop (by position on the path) and cell: the waterfall of the mean message.

    Hops are keyed by their position and name, so a path's legs stay in order; means over the
    messages that have the hop add up to the mean total when every message has the same path.
    """
    hops = run.hops
    if hops.empty:
        return pd.DataFrame(columns=["cell", "idx", "hop", "category", "mean_ms", "p50_ms"])
    g = hops.groupby(["cell", "idx", "hop", "category"], sort=False)["dur_ms"]
    out = pd.DataFrame({"mean_ms": g.mean(), "p50_ms": g.median(), "messages": g.size()})
    return out.reset_index().sort_values(["cell", "idx"], kind="stable").reset_index(drop=True)
