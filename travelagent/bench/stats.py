"""Pure statistics of the suite: percentiles, per-round figures and pairwise ratios; no I/O.

A *figure* is one quantity measured once per round; it is reported as the median over the rounds
with the min and max beside it. A ratio between two configurations is taken round by round (each
pair ran back to back, under the same background load) and only then summarised, so a noisy
round moves both sides of its ratio together instead of skewing one of them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation, as numpy's default; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Figure:
    """One quantity over the rounds: median, min, max and every round's value in order."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Figure:
        vals = tuple(float(v) for v in values if not math.isnan(float(v)))
        if not vals:
            return cls(math.nan, math.nan, math.nan, ())
        return cls(statistics.median(vals), min(vals), max(vals), vals)

    def to_dict(self) -> dict[str, object]:
        return {"median": self.median, "min": self.low, "max": self.high, "values": self.values}


def pairwise_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Figure:
    """Round-by-round ratio ``numerators[i] / denominators[i]``, summarised as a figure."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} numerators but {len(denominators)} denominators")
    return Figure.of(
        n / d if d else math.nan for n, d in zip(numerators, denominators, strict=True)
    )


def pairwise_overhead(with_: Sequence[float], without: Sequence[float]) -> Figure:
    """Round-by-round relative cost ``with / without - 1`` (0.02 = 2 % more)."""
    return Figure.of(r - 1 for r in pairwise_ratio(with_, without).values)


def pairwise_difference(a: Sequence[float], b: Sequence[float]) -> Figure:
    """Round-by-round ``a[i] - b[i]``."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values against {len(b)}")
    return Figure.of(x - y for x, y in zip(a, b, strict=True))
