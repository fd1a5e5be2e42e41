"""Verdict rules: a quantity's 95 % interval against a line; pure, no data loading.

Four verdicts. ``confirmed``: the interval lies wholly on the claim's side of its line.
``refuted``: it lies wholly on the wrong side (for "X lowers latency": the gain's interval
excludes a practically relevant gain). ``inconclusive``: it straddles the line, so this run
cannot tell, and ``needed`` says how much more data would be expected to decide at the observed
effect. ``not tested``: the run lacks what the claim needs.

Why intervals and not point estimates: a point estimate near a line lands on either side from
one run to the next (a p90 of 199.5 ms one morning and 207 ms the next against 200 ms), and a
verdict that flips on a rerun is noise presented as a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIRMED, REFUTED, INCONCLUSIVE, NOT_TESTED = "confirmed", "refuted", "inconclusive", "not tested"
VERDICTS = (CONFIRMED, REFUTED, INCONCLUSIVE, NOT_TESTED)


def _ok(*xs: float) -> bool:
    return all(isinstance(x, int | float) and math.isfinite(x) for x in xs)


def above(lo: float, hi: float, line: float) -> str:
    """Claim "the quantity exceeds ``line``"."""
    if not _ok(lo, hi):
        return NOT_TESTED
    if lo > line:
        return CONFIRMED
    if hi < line:
        return REFUTED
    return INCONCLUSIVE


def within(lo: float, hi: float, low: float, high: float) -> str:
    """Claim "the quantity lies in [low, high]"."""
    if not _ok(lo, hi):
        return NOT_TESTED
    if low <= lo and hi <= high:
        return CONFIRMED
    if hi < low or lo > high:
        return REFUTED
    return INCONCLUSIVE


def at_most(lo: float, hi: float, line: float) -> str:
    """Claim "the quantity does not exceed ``line``"."""
    if not _ok(lo, hi):
        return NOT_TESTED
    if hi <= line:
        return CONFIRMED
    if lo > line:
        return REFUTED
    return INCONCLUSIVE


def lowers(lo: float, hi: float, margin: float) -> str:
    """Claim "X lowers latency", from the interval of the gain (positive: lower with X).

    Confirmed when the gain is surely positive; refuted when even its upper end falls short of
    ``margin``, the smallest gain worth having (docs/analysis.md); inconclusive otherwise. A gain
    surely positive but surely below the margin is refuted: it is real and not worth building.
    """
    if not _ok(lo, hi):
        return NOT_TESTED
    if hi < margin:
        return REFUTED
    if lo > 0:
        return CONFIRMED
    return INCONCLUSIVE


def both(*verdicts: str) -> str:
    """All parts of a claim must hold: refuted if any part is, confirmed if all are."""
    if any(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if any(v == REFUTED for v in verdicts):
        return REFUTED
    if all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Needed:
    """How much data would be expected to decide an inconclusive comparison."""

    factor: float  # times the data this run has (inf: the estimate sits on the line)
    n: float  # messages (or pairs) in all
    repetitions: float  # repetitions of the experiment at its current size

    def text(self) -> str:
        if not math.isfinite(self.factor):
            return "the estimate sits on the line: no amount of data is expected to decide it"
        return (
            f"about {self.factor:.1f}x the data would be expected to decide it at the observed "
            f"effect (n ~ {self.n:,.0f}, ~{math.ceil(self.repetitions)} repetitions)"
        )


def needed(estimate: float, lo: float, hi: float, line: float, n: int, repetitions: int) -> Needed:
    """Data expected to make the interval clear ``line`` if the estimate stays where it is.

    An interval's half-width shrinks as 1/sqrt(n), so it clears the line once the data grow by
    (half-width / distance to the line)^2. Repetitions grow in proportion, since the interval
    also carries the spread between them.
    """
    distance = abs(estimate - line)
    half = (hi - lo) / 2
    if not _ok(distance, half) or distance == 0:
        return Needed(math.inf, math.inf, math.inf)
    factor = max(1.0, (half / distance) ** 2)
    return Needed(factor, factor * n, factor * max(repetitions, 1))
