"""Pairing cells for comparisons: a baseline and a variant that differ only in the factor(s)
under test (arch, publish mode, streaming, webhook mode, ...), at the lowest offered load the
run has for them, so that queueing does not blur the effect being measured.

A cell repeated (``repetitions = N``) is one configuration; its repetitions are pooled for the
estimates, and intervals resample repetitions, then messages. Messages pair across two
configurations when they asked the same question (same repetition, user k, message index i):
with the simulated model they got the same LLM timings, so paired differences leave the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.analysis.load import FACTORS
from travelagent.analysis.stats import (
    N_BOOT,
    SEED,
    cluster_bootstrap_quantile,
    group_indices,
    interval,
)

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

Filter = dict[str, Any]
# The LLM's time varies from message to message (answers differ in length) but is the same
# work whichever path carries the message; comparisons of paths and transports subtract it.
OVERHEAD = "overhead_ms"


# Pairs (same repetition, user k, message i) needed before a comparison is made on paired
# differences: at least this many, and at least this share of the smaller sample.
MIN_PAIRS = 10
MIN_PAIRED_SHARE = 0.5
PAIR_KEYS = ["repetition", "user_key", "seq"]


def _matches(cells: pd.DataFrame, f: Filter) -> pd.DataFrame:
    mask = pd.Series(True, index=cells.index)
    for k, v in f.items():
        mask &= cells[k] == v
    return cells[mask]


def _load_key(c: pd.Series) -> tuple[float, float]:
    def num(x: Any) -> float:
        try:
            f = float(x)
        except (TypeError, ValueError):
            return np.inf
        return f if f == f else np.inf

    return (num(c.get("users")), num(c.get("rate_per_s")))


def configs(run: Run) -> pd.DataFrame:
    """One row per configuration (a cell and its repetitions) with replies: its factors, how
    many repetitions and ok messages it has. Index and ``config`` column: the config name."""
    cells = run.cells[run.cells["ok"] > 0]
    if "config" not in cells:
        cells = cells.assign(config=cells["cell"], repetition=1)
    first = cells.groupby("config", sort=False).first()
    first["ok"] = cells.groupby("config", sort=False)["ok"].sum()
    first["repetitions"] = cells.groupby("config", sort=False)["repetition"].nunique()
    first["config"] = first.index
    return first


def find_pair(
    run: Run, base: Filter | Sequence[Filter], variant: Filter, *, ignore: Sequence[str] = ()
) -> tuple[str, str] | None:
    """(base config, variant config) agreeing on every factor not named in the filters or
    ``ignore``; with several base filters, the first that finds a pair wins; among pairs the
    lowest load wins. A config is a cell with all its repetitions (without repetitions, the
    cell's own name)."""
    cells = configs(run)
    bases = [base] if isinstance(base, dict) else list(base)
    for b in bases:
        # Factors a filter fixes on one side only must still agree between the two cells.
        varied = {k for k in set(b) & set(variant) if b[k] != variant[k]} | set(ignore)
        same = [f for f in FACTORS if f not in varied]
        pairs = []
        for _, bc in _matches(cells, b).iterrows():
            for _, vc in _matches(cells, variant).iterrows():
                if bc["config"] != vc["config"] and all(bc[f] == vc[f] for f in same):
                    # lightest load first; at equal load the note's unstreamed baseline first
                    key = (*_load_key(bc), bool(bc["streaming"]), bool(vc["streaming"]))
                    pairs.append((key, bc["config"], vc["config"]))
        if pairs:
            pairs.sort(key=lambda p: p[0])
            return (str(pairs[0][1]), str(pairs[0][2]))
    return None


def baseline_cell(run: Run, filters: Sequence[Filter]) -> str | None:
    """The lowest-load config matching the first filter that matches any."""
    cells = configs(run)
    for f in filters:
        m = _matches(cells, f)
        if not m.empty:
            best = min(m.iterrows(), key=lambda r: _load_key(r[1]))
            return str(best[1]["config"])
    return None


def sample(run: Run, config: str, metric: str = "service_ms") -> pd.DataFrame:
    """The config's ok messages (every repetition) with their pairing keys and ``value``, the
    ``metric`` in ms; ``overhead_ms`` is each message's service time minus its own LLM time
    (agent.start -> llm.done), from the stamps."""
    ok = run.ok()
    col = "config" if "config" in ok else "cell"
    m = ok[ok[col] == config]
    keys = [k for k in ("msg_id", *PAIR_KEYS) if k in m]
    if metric == OVERHEAD:
        from travelagent.analysis.decompose import decompose_messages

        per = decompose_messages(run)
        per = per[per["msg_id"].isin(m["msg_id"])]
        over = (per["total_ms"] - per["llm_ms"]).astype("float64")
        vals = pd.Series(over.to_numpy(), index=per["msg_id"].to_numpy())
        out = m[keys].assign(value=m["msg_id"].map(vals))
    else:
        out = m[keys].assign(value=pd.to_numeric(m[metric], errors="coerce").astype("float64"))
    out = out[np.isfinite(out["value"].to_numpy(dtype="float64"))]
    if "repetition" not in out:
        out = out.assign(repetition=1)
    return out.reset_index(drop=True)


def values(run: Run, config: str, metric: str = "service_ms") -> np.ndarray:
    """The config's ok values of ``metric``, every repetition pooled."""
    return sample(run, config, metric)["value"].to_numpy(dtype="float64")


def _pairs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Messages of ``a`` and ``b`` that asked the same question: same repetition, user, index."""
    if not set(PAIR_KEYS) <= set(a) or not set(PAIR_KEYS) <= set(b):
        return pd.DataFrame(columns=[*PAIR_KEYS, "value_a", "value_b"])
    a = a.dropna(subset=PAIR_KEYS).drop_duplicates(PAIR_KEYS)
    b = b.dropna(subset=PAIR_KEYS).drop_duplicates(PAIR_KEYS)
    return a[[*PAIR_KEYS, "value"]].merge(
        b[[*PAIR_KEYS, "value"]], on=PAIR_KEYS, suffixes=("_a", "_b")
    )


def paired_or_not(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame | None:
    """The pairs of two samples when there are enough of them to compare on, else None."""
    p = _pairs(a, b)
    enough = len(p) >= MIN_PAIRS and len(p) >= MIN_PAIRED_SHARE * min(len(a), len(b))
    return p if enough else None


def gain(
    a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = SEED
) -> dict[str, Any]:
    """How much lower ``b``'s values are than ``a``'s, with a 95 % interval.

    Paired (same repetition, user and message index in both): the median of the per-message
    differences ``a - b``; the bootstrap resamples repetitions, then pairs, so the LLM's time,
    the same on both sides of a pair, drops out by design. Unpaired: the difference of the
    medians, each side resampled by repetition, then message.
    """
    pairs = paired_or_not(a, b)
    if pairs is not None:
        d = (pairs["value_a"] - pairs["value_b"]).to_numpy(dtype="float64")
        boot = cluster_bootstrap_quantile(
            group_indices(pairs["repetition"]), d, 0.5, n_boot=n_boot, seed=seed
        )
        lo, hi = interval(boot)
        est = float(np.median(d)) if len(d) else np.nan
        return {"gain_ms": est, "gain_lo_ms": lo, "gain_hi_ms": hi, "paired": True,
                "n_pairs": len(d), "repetitions": int(pairs["repetition"].nunique())}  # fmt: skip
    va, vb = a["value"].to_numpy(dtype="float64"), b["value"].to_numpy(dtype="float64")
    if len(va) == 0 or len(vb) == 0:
        return {"gain_ms": np.nan, "gain_lo_ms": np.nan, "gain_hi_ms": np.nan, "paired": False,
                "n_pairs": 0, "repetitions": 0}  # fmt: skip
    ba = cluster_bootstrap_quantile(group_indices(a["repetition"]), va, 0.5,
                                    n_boot=n_boot, seed=seed)  # fmt: skip
    bb = cluster_bootstrap_quantile(group_indices(b["repetition"]), vb, 0.5,
                                    n_boot=n_boot, seed=seed + 1)  # fmt: skip
    lo, hi = interval(ba - bb)
    reps = int(min(a["repetition"].nunique(), b["repetition"].nunique()))
    return {"gain_ms": float(np.median(va) - np.median(vb)), "gain_lo_ms": lo, "gain_hi_ms": hi,
            "paired": False, "n_pairs": 0, "repetitions": reps}  # fmt: skip


def compare_cells(
    run: Run,
    base_cell: str,
    variant_cell: str,
    *,
    base_metric: str = "service_ms",
    variant_metric: str | None = None,
) -> dict[str, Any]:
    """Medians of both configs and how much lower the variant is (``gain``, positive: the
    variant is faster), with its interval.

    Where the two configs' messages pair up (same repetition, user, message index: the same
    question with the same LLM timings), the comparison is on paired differences of what the
    user waits (service time, or first chunk), which takes the LLM out by design; the time
    outside the LLM is then only reported. Unpaired configs compare ``base_metric`` medians
    (the time outside the LLM for paths and transports).
    """
    variant_metric = variant_metric or base_metric
    # what the user waits for on each side, paired when the messages pair up
    user_a = sample(run, base_cell, "service_ms" if base_metric == OVERHEAD else base_metric)
    user_b = sample(run, variant_cell,
                    "service_ms" if variant_metric == OVERHEAD else variant_metric)  # fmt: skip
    if paired_or_not(user_a, user_b) is not None:
        a, b = user_a, user_b
        bm = "service_ms" if base_metric == OVERHEAD else base_metric
        vm = "service_ms" if variant_metric == OVERHEAD else variant_metric
    else:
        a, b = sample(run, base_cell, base_metric), sample(run, variant_cell, variant_metric)
        bm, vm = base_metric, variant_metric
        if base_metric == OVERHEAD and (a.empty or b.empty):
            # no stamps to take the LLM out with: compare whole service times
            bm = vm = "service_ms"
            a, b = sample(run, base_cell, bm), sample(run, variant_cell, vm)
    d = gain(a, b)
    e2e_a, e2e_b = values(run, base_cell), values(run, variant_cell)
    over_a, over_b = values(run, base_cell, OVERHEAD), values(run, variant_cell, OVERHEAD)
    return {
        "base_cell": base_cell,
        "variant_cell": variant_cell,
        "base_metric": bm,
        "variant_metric": vm,
        "base_p50_ms": float(a["value"].median()) if len(a) else np.nan,
        "variant_p50_ms": float(b["value"].median()) if len(b) else np.nan,
        "base_service_p50_ms": float(np.median(e2e_a)) if len(e2e_a) else np.nan,
        "variant_service_p50_ms": float(np.median(e2e_b)) if len(e2e_b) else np.nan,
        "base_overhead_p50_ms": float(np.median(over_a)) if len(over_a) else np.nan,
        "variant_overhead_p50_ms": float(np.median(over_b)) if len(over_b) else np.nan,
        **d,
        "n_base": len(a),
        "n_variant": len(b),
    }


def effect(gain_lo_ms: float, gain_hi_ms: float) -> str:
    """Words for a gain interval: lower / no detectable difference / higher."""
    if gain_lo_ms > 0:
        return "lower"
    if gain_hi_ms < 0:
        return "higher"
    return "no detectable difference"


REALTIME_BASELINES: list[Filter] = [
    # The note's current implementation first: a new HTTP connection per publish, no streaming.
    {"arch": "realtime", "publish": "http-new", "streaming": False},
    {"arch": "realtime", "publish": "http-pooled", "streaming": False},
    {"arch": "realtime", "streaming": False},
    # a run whose paths are all streamed: the same order among streamed cells
    {"arch": "realtime", "publish": "http-new"},
    {"arch": "realtime", "publish": "http-pooled"},
    {"arch": "realtime"},
]
GATEWAY_BASELINES: list[Filter] = [{"arch": "gateway", "streaming": False}, {"arch": "gateway"}]

# Each optimization of the note against its baseline: (name, base filters, variant, ignore,
# base metric, variant metric). Paths and transports are compared without the LLM's time;
# streaming on what the user sees (first chunk) and on the whole reply.
OPTIMIZATIONS: list[tuple[str, list[Filter], Filter, tuple[str, ...], str, str]] = [
    ("pooled HTTP publish vs new connection per publish",
     [{"arch": "realtime", "publish": "http-new"}],
     {"arch": "realtime", "publish": "http-pooled"}, (), OVERHEAD, OVERHEAD),
    ("persistent publisher socket vs new connection per publish",
     [{"arch": "realtime", "publish": "http-new"}],
     {"arch": "realtime", "publish": "ws-persistent"}, (), OVERHEAD, OVERHEAD),
    ("persistent publisher socket vs pooled HTTP publish",
     [{"arch": "realtime", "publish": "http-pooled"}],
     {"arch": "realtime", "publish": "ws-persistent"}, (), OVERHEAD, OVERHEAD),
    ("streaming (first chunk) vs not streaming (whole reply), realtime",
     [{"arch": "realtime", "streaming": False}],
     {"arch": "realtime", "streaming": True}, (), "service_ms", "ttfc_ms"),
    ("streaming (whole reply) vs not streaming, realtime",
     [{"arch": "realtime", "streaming": False}],
     {"arch": "realtime", "streaming": True}, (), "service_ms", "service_ms"),
    ("streaming (first chunk) vs not streaming (whole reply), gateway",
     [{"arch": "gateway", "streaming": False}],
     {"arch": "gateway", "streaming": True}, (), "service_ms", "ttfc_ms"),
    ("webhook acknowledged first vs after publish",
     [{"arch": "realtime", "webhook_mode": "after-publish"}],
     {"arch": "realtime", "webhook_mode": "ack-first"}, (), OVERHEAD, OVERHEAD),
    ("hybrid vs gateway", [{"arch": "gateway"}], {"arch": "hybrid"}, (), OVERHEAD, OVERHEAD),
    ("gateway vs realtime", REALTIME_BASELINES, {"arch": "gateway"},
     ("publish", "webhook_mode"), OVERHEAD, OVERHEAD),
]  # fmt: skip


def optimizations_table(run: Run) -> pd.DataFrame:
    """Every optimization the run can test, against its baseline; untestable ones say so."""
    rows = []
    for name, bases, variant, ignore, bm, vm in OPTIMIZATIONS:
        pair = find_pair(run, bases, variant, ignore=ignore)
        if pair is None:
            rows.append({"comparison": name, "effect": "not in this run"})
            continue
        c = compare_cells(run, pair[0], pair[1], base_metric=bm, variant_metric=vm)
        rows.append({"comparison": name, "effect": effect(c["gain_lo_ms"], c["gain_hi_ms"]), **c})
    return pd.DataFrame(rows)
