"""The vectorised cluster bootstrap draws the same kind of resamples as the loop
(``cluster_bootstrap``): each replicate picks groups with replacement, then rows within each
chosen group, and its statistic is exactly numpy's on those rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from travelagent.analysis import stats
from travelagent.analysis.stats import (
    cluster_bootstrap,
    cluster_bootstrap_quantile,
    cluster_bootstrap_ratio,
    interval,
)


def _groups(sizes: list[int]) -> list[np.ndarray]:
    edges = np.cumsum([0, *sizes])
    return [np.arange(a, b) for a, b in itertools.pairwise(edges)]


def _replicates(groups: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    out = []
    for pos, real in stats._cluster_resamples(groups, n_boot, seed):
        out += [pos[r][real[r]] for r in range(len(pos))]
    return out


@pytest.mark.parametrize("sizes", [[50], [40, 25, 60], [1, 30], [7, 7, 7, 7]])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 1.0])
def test_quantile_is_numpys_on_each_resample(sizes: list[int], q: float) -> None:
    rng = np.random.default_rng(3)
    groups = _groups(sizes)
    v = rng.lognormal(3, 0.5, sum(sizes))
    boot = cluster_bootstrap_quantile(groups, v, q, n_boot=40, seed=11)
    want = [np.quantile(v[ix], q) for ix in _replicates(groups, 40, 11)]
    np.testing.assert_allclose(boot, want, rtol=1e-12)


def test_each_resample_draws_whole_groups_of_their_own_size() -> None:
    groups = _groups([10, 30, 5])
    owner = np.repeat([0, 1, 2], [10, 30, 5])
    for ix in _replicates(groups, 200, 5):
        counts = np.bincount(owner[ix], minlength=3)
        # a group chosen j times gives j times its size in rows; three choices in all
        assert all(c % len(g) == 0 for c, g in zip(counts, groups, strict=True))
        assert sum(c // len(g) for c, g in zip(counts, groups, strict=True)) == 3


def test_ratio_and_mean_match_the_loop_on_each_resample() -> None:
    rng = np.random.default_rng(4)
    groups = _groups([30, 45])
    a, b = rng.random(75), rng.random(75) + 0.5
    reps = _replicates(groups, 30, 9)
    np.testing.assert_allclose(cluster_bootstrap_ratio(groups, a, b, n_boot=30, seed=9),
                               [a[ix].sum() / b[ix].sum() for ix in reps])  # fmt: skip
    np.testing.assert_allclose(cluster_bootstrap_ratio(groups, a, n_boot=30, seed=9),
                               [a[ix].mean() for ix in reps])  # fmt: skip


def test_a_non_positive_denominator_gives_nan_not_a_crash() -> None:
    boot = cluster_bootstrap_ratio(_groups([5]), np.ones(5), np.zeros(5), n_boot=10)
    assert np.isnan(boot).all()


def test_intervals_agree_with_the_loop_version_in_distribution() -> None:
    rng = np.random.default_rng(1)
    groups = _groups([200, 180, 220])
    v = np.concatenate([rng.lognormal(3, 0.3, 200), rng.lognormal(3.1, 0.3, 180),
                        rng.lognormal(2.9, 0.3, 220)])  # fmt: skip
    lo_a, hi_a = interval(cluster_bootstrap(groups, lambda ix: float(np.median(v[ix]))))
    lo_b, hi_b = interval(cluster_bootstrap_quantile(groups, v, 0.5))
    width = hi_a - lo_a
    assert abs(lo_a - lo_b) < 0.15 * width and abs(hi_a - hi_b) < 0.15 * width


def test_no_rows_gives_nan() -> None:
    assert np.isnan(cluster_bootstrap_quantile([np.array([], dtype=np.int64)], np.array([]), 0.5,
                                               n_boot=5)).all()  # fmt: skip
    assert np.isnan(cluster_bootstrap_ratio([], np.array([]), n_boot=5)).all()
