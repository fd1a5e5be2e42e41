from __future__ import annotations

import math

import numpy as np
import pytest

from travelagent.analysis.stats import (
    bootstrap_ci,
    diff_of_medians,
    percentiles,
    summarize,
)


def test_percentiles_match_numpy_on_exact_values() -> None:
    v = np.random.default_rng(1).lognormal(4, 0.5, size=5001)
    got = percentiles(v)
    for p in (50, 90, 99, 99.9):
        assert got[f"p{p:g}"] == np.percentile(v, p)
    assert got["max"] == v.max()


def test_percentiles_ignore_missing_values_and_handle_empty_input() -> None:
    assert percentiles([1.0, float("nan"), 3.0])["p50"] == 2.0
    assert math.isnan(percentiles([])["p50"])
    assert math.isnan(summarize([])["p50_lo"])


def test_bootstrap_interval_is_seeded_and_reproducible() -> None:
    v = np.arange(100.0)
    assert bootstrap_ci(v, n_boot=200, seed=3) == bootstrap_ci(v, n_boot=200, seed=3)
    assert bootstrap_ci(v, n_boot=200, seed=3) != bootstrap_ci(v, n_boot=200, seed=4)


def test_bootstrap_interval_covers_the_true_median_most_of_the_time() -> None:
    true_median = math.log(2) * 10  # exponential with scale 10
    covered = 0
    trials = 40
    for i in range(trials):
        v = np.random.default_rng(100 + i).exponential(10, size=300)
        lo, hi = bootstrap_ci(v, 50, n_boot=300, seed=i)
        assert lo <= np.median(v) <= hi
        covered += lo <= true_median <= hi
    assert covered >= 0.85 * trials


def test_summary_reports_n_and_intervals_around_each_percentile() -> None:
    v = np.random.default_rng(2).normal(100, 10, size=2000)
    s = summarize(v, n_boot=200)
    assert s["n"] == 2000
    for p in ("p50", "p90", "p99"):
        assert s[f"{p}_lo"] <= s[p] <= s[f"{p}_hi"]
    assert s["p50_lo"] < 100 < s["p50_hi"]


def test_difference_of_medians_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(120, 5, size=400)
    b = rng.normal(100, 5, size=400)
    d = diff_of_medians(a, b, n_boot=300)
    assert d["lo"] > 15 and d["hi"] < 25
    same = diff_of_medians(rng.normal(100, 5, 400), rng.normal(100, 5, 400), n_boot=300)
    assert same["lo"] < 0 < same["hi"]
    assert math.isnan(diff_of_medians([], b)["diff"])


@pytest.mark.parametrize("n", [1, 2, 7])
def test_tiny_samples_do_not_crash(n: int) -> None:
    s = summarize(np.arange(float(n)), n_boot=50)
    assert s["n"] == n and s["p50_lo"] <= s["p50_hi"]
