"""The soak's memory figures on synthetic RSS samples."""

from __future__ import annotations

import math

import pytest

from travelagent.runner.soak import MIB, memory_summary, slope_per_minute


def test_slope_of_a_line_is_exact_and_its_interval_tight() -> None:
    pts = [(60.0 * k, 100 + 2.0 * k) for k in range(10)]  # 2 MiB per minute
    b, lo, hi, n = slope_per_minute(pts)
    assert b == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    assert n == 10
    assert math.isnan(slope_per_minute(pts[:2])[0])  # too few points to say


def test_growth_then_flat_shows_in_the_second_half() -> None:
    t0 = 1_000_000_000_000
    rss = []
    for s in range(600):  # 10 minutes at 1 s: +3 MiB/min for 5 minutes, then flat with noise
        mib = 50 + 3 * min(s, 300) / 60 + (0.05 if s % 2 else -0.05)
        rss.append((t0 + s * 1_000_000_000, "realtime", int(mib * MIB)))
    m = memory_summary(rss, t0, 600)["realtime"]
    assert m["start_mib"] < 55 and m["end_mib"] == pytest.approx(65, abs=0.2)
    assert m["slope_mib_per_min"] > 1  # over the whole soak it rose
    lo, hi = m["late_slope_ci95"]
    assert lo <= 0 <= hi  # over its second half it did not
