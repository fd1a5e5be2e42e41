"""Percentiles from exact values, seeded bootstrap intervals, and latency summaries.

Percentiles are computed from every recorded value (numpy's default linear interpolation),
never from a histogram. Intervals are percentile-bootstrap 95 % intervals from ``n_boot``
resamples with a fixed seed, so a report is reproducible to the digit. A high percentile of a
small sample has a meaningless interval: ``n`` is always reported beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
N_BOOT = 1000
SEED = 20240501
LEVEL = 0.95
# Resample in chunks so memory stays near this many floats whatever the sample size.
_CHUNK_VALUES = 4_000_000


def _values(values: Iterable[float] | pd.Series) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(values), errors="coerce").astype("float64").to_numpy()
    return arr[np.isfinite(arr)]


def percentiles(values: Iterable[float], ps: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., ..., "max": ...}`` from the exact values (NaN when there are none)."""
    v = _values(values)
    out = {f"p{p:g}": float(np.percentile(v, p)) if len(v) else np.nan for p in ps}
    out["max"] = float(v.max()) if len(v) else np.nan
    return out


def _bootstrap(
    v: np.ndarray, qs: Sequence[float], n_boot: int, seed: int
) -> np.ndarray:  # shape (n_boot, len(qs))
    rng = np.random.default_rng(seed)
    n = len(v)
    chunk = max(1, _CHUNK_VALUES // max(n, 1))
    out = []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))
        out.append(np.percentile(v[idx], qs, axis=1).T)
    return np.vstack(out)


def bootstrap_ci(
    values: Iterable[float],
    p: float = 50.0,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the ``p``-th percentile."""
    v = _values(values)
    if len(v) == 0:
        return (np.nan, np.nan)
    boot = _bootstrap(v, [p], n_boot, seed)[:, 0]
    a = (1 - level) / 2
    return (float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a)))


def summarize(
    values: Iterable[float],
    *,
    ps: Sequence[float] = PERCENTILES,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, float]:
    """n, mean, each percentile with its interval (``p50``, ``p50_lo``, ``p50_hi``...), max."""
    v = _values(values)
    out: dict[str, float] = {"n": float(len(v)), "mean": float(v.mean()) if len(v) else np.nan}
    pct = percentiles(v, ps)
    boot = _bootstrap(v, ps, n_boot, seed) if len(v) and n_boot > 0 else None
    a = (1 - level) / 2
    for i, p in enumerate(ps):
        key = f"p{p:g}"
        out[key] = pct[key]
        if boot is None:
            out[f"{key}_lo"] = out[f"{key}_hi"] = np.nan
        else:
            out[f"{key}_lo"] = float(np.quantile(boot[:, i], a))
            out[f"{key}_hi"] = float(np.quantile(boot[:, i], 1 - a))
    out["max"] = pct["max"]
    return out


def diff_of_medians(
    a: Iterable[float],
    b: Iterable[float],
    *,
    p: float = 50.0,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, float]:
    """``p``-th percentile of ``a`` minus that of ``b``, with a bootstrap interval.

    The two samples are resampled independently (they are different messages).
    """
    va, vb = _values(a), _values(b)
    if len(va) == 0 or len(vb) == 0:
        return {"diff": np.nan, "lo": np.nan, "hi": np.nan, "n_a": len(va), "n_b": len(vb)}
    ba = _bootstrap(va, [p], n_boot, seed)[:, 0]
    bb = _bootstrap(vb, [p], n_boot, seed + 1)[:, 0]
    d = ba - bb
    alpha = (1 - level) / 2
    return {
        "diff": float(np.percentile(va, p) - np.percentile(vb, p)),
        "lo": float(np.quantile(d, alpha)),
        "hi": float(np.quantile(d, 1 - alpha)),
        "n_a": float(len(va)),
        "n_b": float(len(vb)),
    }


METRICS = {
    "service_ms": "service time (recv - send)",
    "corrected_ms": "corrected for coordinated omission (recv - intended)",
    "ttfc_ms": "time to first chunk (first - send)",
    "corrected_ttfc_ms": "time to first chunk, corrected (first - intended)",
}


def latency_table(
    run: Run,
    metrics: Sequence[str] = ("service_ms", "corrected_ms"),
    *,
    by: str = "cell",
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> pd.DataFrame:
    """One row per (group, metric): n, mean, percentiles with intervals, max; ok messages only."""
    rows: list[dict[str, Any]] = []
    ok = run.ok()
    for key, g in ok.groupby(by, sort=False):
        for metric in metrics:
            s = summarize(g[metric], n_boot=n_boot, seed=seed)
            rows.append({by: key, "metric": metric, **s})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["n"] = df["n"].astype(int)
    return df


def status_table(run: Run) -> pd.DataFrame:
    """Messages per cell by status, and the error rate."""
    t = run.messages.groupby("cell")["status"].value_counts().unstack(fill_value=0)
    for s in ("ok", "error", "timeout", "lost", "stopped"):
        if s not in t:
            t[s] = 0
    t = t[["ok", "error", "timeout", "lost", "stopped"]]
    t["total"] = t.sum(axis=1)
    # cut short by the stop of the load generator: neither a success nor a failure
    t["error_rate"] = (t["error"] + t["timeout"] + t["lost"]) / (t["total"] - t["stopped"])
    return t


def group_indices(keys: Sequence[Any] | pd.Series) -> list[np.ndarray]:
    """Row positions grouped by key (e.g. the repetition each row came from), in key order."""
    s = pd.Series(list(keys))
    return [np.asarray(ix, dtype=np.int64) for _, ix in sorted(s.groupby(s).indices.items())]


def cluster_bootstrap(
    groups: Sequence[np.ndarray],
    stat: Callable[[np.ndarray], float],
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> np.ndarray:
    """``stat`` over ``n_boot`` two-stage resamples: first the groups (repetitions) with
    replacement, then the rows (messages, pairs) within each chosen group.

    ``groups`` holds each group's row positions; ``stat`` gets the resampled positions. With one
    group this is the ordinary bootstrap; with several, the spread between repetitions widens
    the interval, as it should: a second run of the experiment would differ by about as much.
    """
    groups = [g for g in groups if len(g)]
    if not groups:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    k = len(groups)
    out = np.empty(n_boot)
    for i in range(n_boot):
        chosen = rng.integers(0, k, size=k) if k > 1 else (0,)
        parts = [groups[j][rng.integers(0, len(groups[j]), size=len(groups[j]))] for j in chosen]
        out[i] = stat(np.concatenate(parts) if len(parts) > 1 else parts[0])
    return out


def _cluster_resamples(
    groups: Sequence[np.ndarray], n_boot: int, seed: int
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """The two-stage resamples of ``cluster_bootstrap``, a block of replicates at a time: row
    positions ``(b, width)`` and which of them are real (``(b, width)`` booleans; a replicate
    that drew smaller groups is padded at its end). Each replicate draws ``k`` groups with
    replacement, then as many rows from each chosen group as it has, with replacement."""
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    k, widest = len(groups), int(sizes.max())
    flat = np.concatenate(groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK_VALUES // max(k * widest, 1))
    slot = np.arange(widest)
    for first in range(0, n_boot, block):
        b = min(block, n_boot - first)
        chosen = rng.integers(0, k, size=(b, k)) if k > 1 else np.zeros((b, 1), np.int64)
        n = sizes[chosen]  # (b, k): rows drawn from each chosen group
        u = rng.random((b, k, widest))
        within = np.minimum((u * n[:, :, None]).astype(np.int64), n[:, :, None] - 1)
        pos = flat[starts[chosen][:, :, None] + within]
        real = slot[None, None, :] < n[:, :, None]
        yield pos.reshape(b, k * widest), real.reshape(b, k * widest)


def cluster_bootstrap_quantile(
    groups: Sequence[np.ndarray],
    values: np.ndarray,
    q: float,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> np.ndarray:
    """``cluster_bootstrap`` of the ``q``-quantile (0-1, numpy's linear interpolation) of
    ``values``, computed for a block of replicates at once."""
    groups = [g for g in groups if len(g)]
    if not groups:
        return np.full(n_boot, np.nan)
    v = np.asarray(values, dtype="float64")
    out = []
    for pos, real in _cluster_resamples(groups, n_boot, seed):
        x = np.where(real, v[pos], np.inf)
        x.sort(axis=1)
        m = real.sum(axis=1)
        h = q * (m - 1)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, m - 1)
        rows = np.arange(len(x))
        a, b = x[rows, lo], x[rows, hi]
        out.append(a + (h - lo) * (b - a))
    return np.concatenate(out)


def cluster_bootstrap_ratio(
    groups: Sequence[np.ndarray],
    num: np.ndarray,
    den: np.ndarray | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> np.ndarray:
    """``cluster_bootstrap`` of ``sum(num) / sum(den)`` over the resampled rows (the mean of
    ``num`` when ``den`` is None; NaN where the denominator is not positive), vectorised."""
    groups = [g for g in groups if len(g)]
    if not groups:
        return np.full(n_boot, np.nan)
    a = np.asarray(num, dtype="float64")
    d = None if den is None else np.asarray(den, dtype="float64")
    out = []
    for pos, real in _cluster_resamples(groups, n_boot, seed):
        top = np.where(real, a[pos], 0.0).sum(axis=1)
        bottom = real.sum(axis=1).astype("float64") if d is None else np.where(
            real, d[pos], 0.0).sum(axis=1)  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(bottom > 0, top / bottom, np.nan))
    return np.concatenate(out)


def interval(boot: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaN when there are none)."""
    b = boot[np.isfinite(boot)]
    if len(b) == 0:
        return (np.nan, np.nan)
    a = (1 - level) / 2
    return (float(np.quantile(b, a)), float(np.quantile(b, 1 - a)))
