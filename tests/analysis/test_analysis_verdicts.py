"""Verdict rules, intervals across repetitions, and paired comparisons, on data with known
answers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from travelagent.analysis.claims import CSV_COLUMNS, claims_csv, claims_table
from travelagent.analysis.compare import gain
from travelagent.analysis.load import load_run
from travelagent.analysis.stats import cluster_bootstrap, group_indices, interval
from travelagent.analysis.synth import SynthCell, write_synthetic_run
from travelagent.analysis.verdicts import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_TESTED,
    REFUTED,
    above,
    at_most,
    both,
    lowers,
    needed,
    within,
)


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [(0.51, 0.6, CONFIRMED), (0.4, 0.49, REFUTED), (0.45, 0.55, INCONCLUSIVE),
     (math.nan, 0.5, NOT_TESTED)],
)  # fmt: skip
def test_a_share_against_one_half_is_decided_only_by_an_interval_clear_of_it(
    lo: Any, hi: Any, want: Any
) -> None:
    assert above(lo, hi, 0.5) == want


def test_a_range_claim_needs_both_intervals_on_the_right_side() -> None:
    assert both(within(140, 160, 50, 200), at_most(190, 199, 200)) == CONFIRMED
    assert both(within(140, 160, 50, 200), at_most(197, 210, 200)) == INCONCLUSIVE
    assert both(within(140, 160, 50, 200), at_most(201, 210, 200)) == REFUTED
    assert both(within(20, 45, 50, 200), at_most(60, 80, 200)) == REFUTED


def test_a_gain_is_refuted_only_when_it_surely_falls_short_of_the_margin() -> None:
    assert lowers(3, 12, 5) == CONFIRMED
    assert lowers(-2, 4, 5) == REFUTED  # at most 4 ms: not worth having
    assert lowers(-2, 12, 5) == INCONCLUSIVE
    assert lowers(-12, -3, 5) == REFUTED


def test_estimates_sitting_on_the_line_come_out_inconclusive_for_every_seed() -> None:
    # p90 of draws built to sit on 200 ms: no seed may turn the verdict to either side
    rng = np.random.default_rng(3)
    verdicts = set()
    for seed in range(20):
        raw = rng.normal(0, 10, size=300)
        v = raw - np.percentile(raw, 90) + 200.0

        def p90(ix: np.ndarray, v: np.ndarray = v) -> float:
            return float(np.percentile(v[ix], 90))

        ci = interval(cluster_bootstrap([np.arange(300)], p90, n_boot=300, seed=seed))
        verdicts.add(at_most(*ci, 200.0))
    assert verdicts == {INCONCLUSIVE}


def test_needed_data_grows_as_the_effect_nears_the_line() -> None:
    far = needed(210, 204, 216, 200, 500, 3)
    near = needed(203, 197, 209, 200, 500, 3)
    assert 1 <= far.factor < near.factor
    assert near.n == pytest.approx(near.factor * 500)
    assert not math.isfinite(needed(200, 195, 205, 200, 500, 3).factor)
    assert "no amount" in needed(200, 195, 205, 200, 500, 3).text()


def _sample(values_by_rep: list[np.ndarray]) -> pd.DataFrame:
    rows = []
    for r, vals in enumerate(values_by_rep, start=1):
        for i, v in enumerate(vals):
            rows.append({"repetition": r, "user_key": 1 + i % 4, "seq": i // 4, "value": v})
    return pd.DataFrame(rows)


def test_repetitions_that_disagree_widen_the_interval() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(100, 5, size=200)
    agree = [base + rng.normal(0, 1, 200) for _ in range(3)]
    disagree = [base + shift for shift in (-15, 0, 15)]

    def width(reps: list[np.ndarray]) -> float:
        s = _sample(reps)
        v = s["value"].to_numpy()
        lo, hi = interval(cluster_bootstrap(group_indices(s["repetition"]),
                                            lambda ix: float(np.median(v[ix]))))  # fmt: skip
        return hi - lo

    assert width(disagree) > 3 * width(agree)


def test_pairing_finds_a_small_path_difference_under_a_large_shared_llm_variance() -> None:
    rng = np.random.default_rng(2)
    llm = [rng.uniform(50, 900, size=120) for _ in range(3)]  # shared by both paths
    a = _sample([x + 30 + rng.normal(0, 0.5, x.size) for x in llm])
    b = _sample([x + 27 + rng.normal(0, 0.5, x.size) for x in llm])  # 3 ms faster
    paired = gain(a, b)
    assert paired["paired"] and paired["n_pairs"] == 360
    assert 2.5 < paired["gain_lo_ms"] <= paired["gain_hi_ms"] < 3.5
    # the same values with the pairing broken cannot see it
    unpaired = gain(a.assign(seq=a["seq"] + 1000), b)
    assert not unpaired["paired"]
    assert unpaired["gain_lo_ms"] < 0 < unpaired["gain_hi_ms"]


def test_claims_csv_has_the_contract_columns_for_every_claim(tmp_path: Path) -> None:
    cells = [
        SynthCell("gw", "gateway", n=60),
        SynthCell("rt-new", "realtime", publish="http-new", n=60),
        SynthCell("rt-pooled", "realtime", publish="http-pooled", n=60),
    ]
    run = load_run(write_synthetic_run(tmp_path / "run", cells))
    out = claims_csv(claims_table(run))
    assert list(out.columns[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    assert {"claim_id", "verdict", "quantity", "estimate", "ci_low", "ci_high", "threshold",
            "n"} <= set(out.columns)  # fmt: skip
    assert set(out["verdict"]) <= {CONFIRMED, REFUTED, INCONCLUSIVE, NOT_TESTED}
    decided = out[out["verdict"].isin([CONFIRMED, REFUTED, INCONCLUSIVE])]
    assert len(decided) >= 5 and (decided["n"] > 0).all()
    assert out.set_index("claim_id").loc["pooling_lowers", "verdict"] == CONFIRMED
