"""The bench's pure statistics: percentiles, per-round figures and round-by-round ratios."""

from __future__ import annotations

import math
from typing import Any

import pytest

from travelagent.bench.roundtrips import Case, schedule
from travelagent.bench.stats import (
    Figure,
    pairwise_difference,
    pairwise_overhead,
    pairwise_ratio,
    percentile,
)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert math.isnan(percentile([], 50))


def test_figure_is_median_min_max_of_rounds_ignoring_nan() -> None:
    f = Figure.of([3.0, 1.0, float("nan"), 2.0])
    assert (f.median, f.low, f.high, f.values) == (2.0, 1.0, 3.0, (3.0, 1.0, 2.0))
    assert math.isnan(Figure.of([]).median)


def test_ratios_are_taken_round_by_round_before_the_median() -> None:
    # Round 2 is slow for both sides; its ratio is still 2.
    f = pairwise_ratio([2.0, 20.0, 4.0], [1.0, 10.0, 1.0])
    assert f.values == (2.0, 2.0, 4.0) and f.median == 2.0
    assert pairwise_overhead([1.02, 2.2], [1.0, 2.0]).values == pytest.approx((0.02, 0.1))
    assert pairwise_difference([3.0, 5.0], [1.0, 1.0]).median == 3.0
    with pytest.raises(ValueError):
        pairwise_ratio([1.0], [1.0, 2.0])


def test_schedule_interleaves_cases_and_rotates_them_every_round() -> None:
    def factory(user: Any) -> Any:
        raise AssertionError("not called")

    cases = [Case("a", factory, (1, 20)), Case("b", factory, (1,)), Case("c", factory, (1, 20))]
    order = [(r, c, case.name) for r, c, case in schedule(cases, (1, 20), rounds=2)]
    assert order == [
        (0, 1, "a"), (0, 1, "b"), (0, 1, "c"), (0, 20, "a"), (0, 20, "c"),
        (1, 1, "b"), (1, 1, "c"), (1, 1, "a"), (1, 20, "c"), (1, 20, "a"),
    ]  # fmt: skip
