"""The knee finder on synthetic load curves with a known knee, and the saturation tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from travelagent.analysis.saturation import first_saturated, knee, series_name


def test_the_knee_is_where_throughput_stops_following_the_offered_rate() -> None:
    # a server that completes at most 250/s: throughput = min(offered, 250)
    offered = np.array([40, 80, 120, 170, 230, 300, 380, 480, 600], dtype=float)
    throughput = np.minimum(offered, 250.0)
    p50 = np.where(offered < 250, 200.0, 350.0)  # under twice the lightest: only throughput
    k = knee(offered[::-1], throughput[::-1], p50[::-1])  # any order
    assert k["last_ok_rps"] == 230 and k["first_past_rps"] == 300
    # throughput/offered crosses 0.85 between 230 (1.0) and 300 (0.833): interpolated
    assert k["knee_rps"] == pytest.approx(230 + (1 - 0.85) / ((1 - 0.85) - (250 / 300 - 0.85)) * 70)
    assert 250 < k["knee_rps"] < 300
    assert k["max_throughput_rps"] == 250 and k["points"] == 9


def test_the_latency_rule_finds_a_knee_before_throughput_falls() -> None:
    offered = [50, 100, 150, 200, 250, 300]
    p50 = [100, 105, 110, 400, 2000, 5000]  # queueing long before replies fall behind
    k = knee(offered, offered, p50)
    assert (k["last_ok_rps"], k["first_past_rps"], k["knee_rps"]) == (150, 200, 175)


def test_a_curve_that_always_keeps_up_has_no_knee() -> None:
    k = knee([10, 20, 30], [10, 20, 30], [50, 51, 52])
    assert k["last_ok_rps"] == 30 and math.isnan(k["knee_rps"]) and math.isnan(k["first_past_rps"])


def test_once_past_the_knee_a_lucky_point_does_not_undo_it() -> None:
    k = knee([10, 20, 30, 40], [10, 12, 30, 13], [50, 60, 55, 900])
    assert k["first_past_rps"] == 20


def test_the_first_process_at_a_full_core_is_named() -> None:
    points = pd.DataFrame({"series": ["gateway"] * 3, "cell": ["g1", "g2", "g3"],
                           "offered_rps": [50.0, 150.0, 300.0]})  # fmt: skip
    cpu = pd.DataFrame({
        "cell": ["g1", "g1", "g2", "g2", "g3", "g3"],
        "process": ["worker", "locust", "worker", "locust", "worker", "locust"],
        "p90_pct": [30.0, 20.0, 95.0, 60.0, 99.0, 97.0],
    })  # fmt: skip
    got = first_saturated(points, cpu).iloc[0]
    assert got["process"] == "worker" and got["at_offered_rps"] == 150
    cpu["p90_pct"] = [30.0, 20.0, 50.0, 60.0, 70.0, 80.0]  # nobody at a full core
    got = first_saturated(points, cpu).iloc[0]
    assert got["process"] == "locust" and "none reached" in got["how"]


def test_series_are_named_by_the_path_before_the_rate() -> None:
    assert series_name("gateway-r120-6s") == "gateway"
    assert series_name("rt-ws-r600-6s") == "rt-ws"
    assert series_name("rt-new-r80-6s-r2") == "rt-new"
