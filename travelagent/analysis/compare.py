"""Pairing cells for comparisons: a baseline and a variant that differ only in the factor(s)
under test (arch, publish mode, streaming, webhook mode, ...), at the lowest offered load the
run has for them, so that queueing does not blur the effect being measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.analysis.load import FACTORS
from travelagent.analysis.stats import diff_of_medians

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

Filter = dict[str, Any]
# The LLM's time varies from message to message (answers differ in length) but is the same
# work whichever path carries the message; comparisons of paths and transports subtract it.
OVERHEAD = "overhead_ms"


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


def find_pair(
    run: Run, base: Filter | Sequence[Filter], variant: Filter, *, ignore: Sequence[str] = ()
) -> tuple[str, str] | None:
    """(base cell, variant cell) agreeing on every factor not named in the filters or
    ``ignore``; with several base filters, the first that finds a pair wins; among pairs the
    lowest load wins."""
    cells = run.cells[run.cells["ok"] > 0]
    bases = [base] if isinstance(base, dict) else list(base)
    for b in bases:
        # Factors a filter fixes on one side only must still agree between the two cells.
        varied = {k for k in set(b) & set(variant) if b[k] != variant[k]} | set(ignore)
        same = [f for f in FACTORS if f not in varied]
        pairs = []
        for _, bc in _matches(cells, b).iterrows():
            for _, vc in _matches(cells, variant).iterrows():
                if bc["cell"] != vc["cell"] and all(bc[f] == vc[f] for f in same):
                    # lightest load first; at equal load the note's unstreamed baseline first
                    key = (*_load_key(bc), bool(bc["streaming"]), bool(vc["streaming"]))
                    pairs.append((key, bc["cell"], vc["cell"]))
        if pairs:
            pairs.sort(key=lambda p: p[0])
            return (str(pairs[0][1]), str(pairs[0][2]))
    return None


def baseline_cell(run: Run, filters: Sequence[Filter]) -> str | None:
    """The lowest-load cell matching the first filter that matches any cell."""
    cells = run.cells[run.cells["ok"] > 0]
    for f in filters:
        m = _matches(cells, f)
        if not m.empty:
            best = min(m.iterrows(), key=lambda r: _load_key(r[1]))
            return str(best[1]["cell"])
    return None


def values(run: Run, cell: str, metric: str = "service_ms") -> np.ndarray:
    """The cell's ok values of ``metric``; ``overhead_ms`` is each message's service time
    minus its own LLM time (agent.start -> llm.done), from the stamps."""
    if metric == OVERHEAD:
        from travelagent.analysis.decompose import decompose_messages

        per = decompose_messages(run)
        d = per[per["cell"] == cell]
        return (d["total_ms"] - d["llm_ms"]).astype("float64").to_numpy()
    ok = run.ok()
    return ok.loc[ok["cell"] == cell, metric].astype("float64").dropna().to_numpy()


def compare_cells(
    run: Run,
    base_cell: str,
    variant_cell: str,
    *,
    base_metric: str = "service_ms",
    variant_metric: str | None = None,
) -> dict[str, Any]:
    """Medians of both cells and ``base - variant`` with its bootstrap interval (positive:
    the variant is faster)."""
    a = values(run, base_cell, base_metric)
    b = values(run, variant_cell, variant_metric or base_metric)
    if base_metric == OVERHEAD and (len(a) == 0 or len(b) == 0):
        # no stamps to take the LLM out with: compare whole service times
        base_metric = variant_metric = "service_ms"
        a, b = values(run, base_cell, base_metric), values(run, variant_cell, base_metric)
    d = diff_of_medians(a, b)
    e2e_a, e2e_b = values(run, base_cell), values(run, variant_cell)
    return {
        "base_cell": base_cell,
        "variant_cell": variant_cell,
        "base_metric": base_metric,
        "variant_metric": variant_metric or base_metric,
        "base_p50_ms": float(np.median(a)) if len(a) else np.nan,
        "variant_p50_ms": float(np.median(b)) if len(b) else np.nan,
        "base_service_p50_ms": float(np.median(e2e_a)) if len(e2e_a) else np.nan,
        "variant_service_p50_ms": float(np.median(e2e_b)) if len(e2e_b) else np.nan,
        "gain_ms": d["diff"],
        "gain_lo_ms": d["lo"],
        "gain_hi_ms": d["hi"],
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
