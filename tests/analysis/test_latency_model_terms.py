"""The latency model's terms one at a time, each on data whose answer is known: the measured
p50's own interval, the per-message joint residuals (a stall that slows a leg and the in-process
hops of the same message), a question's LLM times convolved with the spread of a repeat, and
the per-component breakdown of a cell's error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from travelagent.analysis import latency_model as lm
from travelagent.analysis.claims_map import run_grid
from travelagent.analysis.load import load_run
from travelagent.analysis.report import _pooled_note
from travelagent.analysis.synth import SynthCell, link, write_synthetic_run, write_synthetic_sweep


def _links(client: float, service: float) -> dict[str, dict[str, Any]]:
    return {
        "client_worker": link(client),
        "client_realtime": link(client),
        "realtime_worker": link(service),
        "worker_realtime": link(service),
    }


def test_the_median_interval_is_the_binomial_order_statistics() -> None:
    # n = 9: P(Bin(9, 1/2) <= 1) = 10/512 <= 2.5%, P(<= 2) = 46/512 > 2.5%: x(2) and x(8)
    assert lm.median_ci(np.arange(1.0, 10.0)) == (2.0, 8.0)
    # n = 20: P(Bin <= 5) = 2.07% <= 2.5% < P(Bin <= 6): x(6) and x(15)
    assert lm.median_ci(np.arange(1.0, 21.0)) == (6.0, 15.0)
    # eight messages cannot reach 95% with inner order statistics: the whole range
    assert lm.median_ci(np.array([5.0, 1, 3, 8, 2, 7, 4, 6])) == (1.0, 8.0)
    assert all(np.isnan(lm.median_ci(np.array([]))))


def test_the_median_interval_of_a_large_cell_does_not_collapse() -> None:
    # n = 66: P(Bin <= 24) = 1.78% <= 2.5% < P(Bin <= 25) = 3.20%: x(25) and x(42), as the normal
    # approximation says (33 -+ 1.96 x sqrt(66) / 2); summed as int64 the binomial coefficients
    # overflowed and the interval was the middle pair, x(33) and x(34)
    assert lm.median_ci(np.arange(1.0, 67.0)) == (25.0, 42.0)
    for n in (100, 400, 3000):
        lo, hi = lm.median_ci(np.arange(1.0, n + 1.0))
        half = 1.96 * np.sqrt(n) / 2
        assert abs(lo - (n / 2 - half)) <= 2 and abs(hi - (n / 2 + 1 + half)) <= 2


def test_the_median_interval_covers_the_true_median_at_least_95_percent() -> None:
    rng = np.random.default_rng(1)
    cis = [lm.median_ci(rng.standard_normal(15)) for _ in range(2000)]
    hits = [lo <= 0 <= hi for lo, hi in cis]
    assert np.mean(hits) >= 0.94  # exact: 96.5% for n = 15


def _fit_with_joint(rows: list[list[float]]) -> lm.Fit:
    return lm.Fit(
        llm_ms={"p": [[0.0, 0.0]]},
        proc_ms={"gateway": [[0.0, 0.0]]},
        joint_ms={"gateway": rows},
    )


def test_a_stall_that_slows_a_leg_and_the_processing_together_is_drawn_together() -> None:
    # two of three measured messages met nothing, one met a 10 ms stall both in processing
    # and on its way in. Drawn whole: 0 w.p. 2/3, 20 w.p. 1/3, so the p50 is the 2 x 5 ms of
    # delay. Drawn independently the p50 would be 10 ms higher (P(both 0) = 4/9 < 1/2).
    f = _fit_with_joint([[0, 0, 0, 0], [0, 0, 0, 0], [10, 0, 10, 0]])
    p = lm.predict(f, {"client_worker": link(5)}, "p", "gateway", n=6000)
    assert p.p50_ms == pytest.approx(10.0, abs=1e-9)
    assert p.p90_ms == pytest.approx(30.0, abs=1e-9)
    # a fit without joint samples (an older fit.json) keeps the independent draws
    old = lm.Fit(llm_ms={"p": [[0.0, 0.0]]}, proc_ms={"gateway": [[0.0, 0.0], [0.0, 0.0],
                                                                  [10.0, 0.0]]})  # fmt: skip
    assert lm.predict(old, {"client_worker": link(5)}, "p", "gateway", n=6000).p50_ms == 10.0


def test_the_joint_residuals_of_a_synthetic_run_are_its_processing_and_no_leg_excess(
    tmp_path: Path,
) -> None:
    cells = [
        SynthCell("gw", "gateway", links=_links(20, 5), n=30, proc_ms=0.5),
        SynthCell("rt", "realtime", "http-pooled", links=_links(20, 5), n=30, proc_ms=0.5),
    ]
    run = load_run(write_synthetic_run(tmp_path, cells))
    f = lm.fit(run, ["gw", "rt"])
    gw = np.asarray(f.joint_ms["gateway"])
    rt = np.asarray(f.joint_ms["rt-pooled"])
    assert gw.shape[1] == 2 + 2 and rt.shape[1] == 2 + 4  # proc, pre, one residual per leg
    assert np.abs(gw[:, 2:]).max() < 0.01 and np.abs(rt[:, 2:]).max() < 0.01
    # the gateway's in-process hops: worker.recv->agent.start, llm.done->agent.done,
    # agent.done->worker.send at 0.5 ms each
    assert np.median(gw[:, 0]) == pytest.approx(1.5, abs=0.01)


def test_a_pareto_legs_jitter_mean_is_not_counted_twice() -> None:
    assert lm._jitter_mean({"jitter": "pareto", "jitter_ms": 10}) == 10
    assert lm._jitter_mean({"jitter": "normal", "jitter_ms": 10}) == 0


def test_a_questions_llm_times_are_convolved_with_the_spread_of_a_repeat() -> None:
    # the same question measured twice, 100 and 110 ms: median 105, deviations -5 and +5,
    # scaled by sqrt(2 / 1) to one repeat's spread
    g = pd.DataFrame({"user_key": [1, 1, 2], "seq": [0, 0, 0], "A": [100.0, 110.0, 50.0],
                      "B": [0.0, 0.0, 0.0]})  # fmt: skip
    dev = np.asarray(lm._llm_deviations(g, np.random.default_rng(0)))
    assert sorted(dev[:, 0]) == pytest.approx([-5 * np.sqrt(2), 5 * np.sqrt(2)], abs=1e-3)
    # a question measured at 100 ms, a repeat's spread of -10 / +10 / +30: the p50 is 110
    f = lm.Fit(llm_ms={"p": [[0.0, 0.0]]}, proc_ms={"gateway": [[0.0, 0.0]]},
               llm_dev_ms={"p": [[-10.0, 0.0], [10.0, 0.0], [30.0, 0.0]]})  # fmt: skip
    n = 6000
    w = lm.Workload(np.zeros(n, dtype=bool), np.full(n, 100.0), np.zeros(n))
    p = lm.predict(f, {"client_worker": link(0)}, "p", "gateway", workload=w)
    assert p.p50_ms == pytest.approx(110.0, abs=1e-9)
    assert p.p90_ms == pytest.approx(130.0, abs=1e-9)
    # without the spread, the question's own time
    f.llm_dev_ms = {}
    assert lm.predict(f, {"client_worker": link(0)}, "p", "gateway", workload=w).p50_ms == 100.0


def test_a_cells_error_is_traced_to_the_hop_that_is_off(tmp_path: Path) -> None:
    # first as recorded: every hop as measured; then the held-out cell's scenario says its
    # client link is 20 ms longer than it was: the breakdown names that leg, and the error
    # is outside the measured p50's interval
    fit_cell = SynthCell("fit", "gateway", links=_links(20, 5), n=40)
    held = SynthCell("held", "gateway", links=_links(20, 5), n=40)
    run = load_run(write_synthetic_run(tmp_path, [fit_cell, held]))
    rows, _, _, comps = lm.model_rows_with_components(run, held_out=["held"])
    assert set(comps["component"]) >= {"client→worker", "worker→client", "proc", "llm"}
    assert comps["diff_ms"].abs().max() < 0.05  # every hop as measured: nothing is off
    held_rows = rows[rows["cell"] == "held"]
    assert held_rows["within_ci"].all() and held_rows["error_pct"].abs().max() < 1
    # now lie about the held-out cell's link: configured 40 ms, measured 20
    held_row = run.cells["cell"] == "held"
    run.cells.loc[held_row, "links"] = json.dumps(_links(40, 5))
    rows, _, _, comps = lm.model_rows_with_components(run, held_out=["held"])
    r = rows.set_index("cell").loc["held"]
    assert r["most_off_component"] in ("client→worker", "worker→client")
    assert r["most_off_ms"] == pytest.approx(20.0, abs=0.1)
    assert not bool(r["within_ci"])


def test_a_sweep_reports_claims_table_says_it_pools_conditions(tmp_path: Path) -> None:
    sweep = load_run(write_synthetic_sweep(tmp_path / "sweep", n=8))
    assert run_grid(sweep) is not None
    note = _pooled_note(sweep)
    assert "Pooled over conditions" in note and "claims_map.csv" in note
    plain = load_run(write_synthetic_run(tmp_path / "plain", [SynthCell("c", "gateway", n=5)]))
    assert _pooled_note(plain) == ""


def test_a_cells_p50_is_predicted_as_the_sample_median_of_its_own_messages() -> None:
    # a cell of two messages, 0 and 100 ms, each replay adding exponential noise (mean 50 ms)
    # to each: the measured p50 is their mean, so its median over replays is
    # 50 + median(Gamma(2, 50)) / 2 = 50 + 50 * 1.6783 / 2 = 91.96 ms, whereas the pooled
    # values' p50 solves exp(-m/50) (1 + e^2) = 1: m = 50 ln(1 + e^2) = 106.35 ms
    rng = np.random.default_rng(3)
    reps = 40000
    values = np.tile([0.0, 100.0], reps) + rng.exponential(50.0, 2 * reps)
    assert lm.sample_quantile(values, 2, 0.5) == pytest.approx(91.96, abs=1.0)
    assert float(np.percentile(values, 50)) == pytest.approx(106.35, abs=1.0)
    # with no replay (or n unknown) it is the pooled quantile
    assert lm.sample_quantile(values[:1], 2, 0.5) == values[0]


def test_each_streaming_mode_is_predicted_from_its_own_llm_times() -> None:
    # the same profile measured whole (unstreamed: one wake-up) and token by token (streamed:
    # a loop pass per token): an unstreamed path must not borrow the streamed turn's time
    f = lm.Fit(
        llm_ms={"p": [[1.0, 3.0], [1.0, 7.0]], lm.llm_mode_key("p", False): [[1.0, 0.5]],
                lm.llm_mode_key("p", True): [[1.0, 7.0]]},
        proc_ms={"gateway": [[0.0, 0.0]], "rt-ws-stream": [[0.0, 0.0]]},
    )  # fmt: skip
    links = {"client_worker": link(0)}
    assert lm.predict(f, links, "p", "gateway").p50_ms == pytest.approx(1.5)
    # a profile measured in one mode only: the pooled times, as before
    g = lm.Fit(llm_ms={"p": [[1.0, 7.0]], lm.llm_mode_key("p", True): [[1.0, 7.0]]},
               proc_ms={"gateway": [[0.0, 0.0]]})  # fmt: skip
    assert lm.predict(g, links, "p", "gateway").p50_ms == pytest.approx(8.0)
    # the question's own times likewise, by mode
    f.llm_by_key = {
        lm.llm_mode_key("p", False): {"1:0": [1.0, 0.5]},
        lm.llm_mode_key("p", True): {"1:0": [1.0, 7.0]},
        "p": {"1:0": [1.0, 4.0]},
    }
    msgs = pd.DataFrame({"seq": [0], "user_key": [1]})
    for stream, want in ((False, 0.5), (True, 7.0), (None, 4.0)):
        b = lm.cell_workload(f, msgs, "p", n=1, stream=stream).b
        assert b is not None and b[0] == want


def test_a_fit_keeps_each_profiles_llm_times_per_streaming_mode(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path, [
        SynthCell("whole", "gateway", llm_ms=20, streaming=False, n=40),
        SynthCell("streamed", "realtime", publish="ws-persistent", llm_ms=20, streaming=True,
                  n=40),
    ]))  # fmt: skip
    f = lm.fit(run, list(run.cells.index))
    profiles = {k.split("@")[0] for k in f.llm_ms}
    for p in profiles:
        assert lm.llm_mode_key(p, False) in f.llm_ms and lm.llm_mode_key(p, True) in f.llm_ms


LINK_LATE = "link client_worker up releases late: p99 9.00 ms > 5 ms"
LOOP_LAG = "worker event-loop lag p99 27.5 ms > 20 ms"


def test_cells_flagged_only_between_processes_give_their_llm_times_and_nothing_else(
    tmp_path: Path,
) -> None:
    # the unstreamed cell of profile "q" was flagged for a link's lateness: the model answer it
    # timed inside the agent is still good, so the whole mode's times come from it, not from the
    # streamed cell's (which carry a loop pass per token); its legs and processing stay out
    run = load_run(write_synthetic_run(tmp_path, [
        SynthCell("q-whole", "gateway", llm_ms=20, n=40, profile="q", flags=(LINK_LATE,),
                  proc_ms=5.0),
        SynthCell("q-stream", "realtime", publish="ws-persistent", llm_ms=27, streaming=True,
                  tokens=8, n=40, profile="q"),
        SynthCell("q-lag", "gateway", llm_ms=90, n=40, profile="q", flags=(LINK_LATE, LOOP_LAG)),
        SynthCell("q-held", "gateway", llm_ms=50, n=40, profile="q", flags=(LINK_LATE,)),
        SynthCell("p-gw", "gateway", llm_ms=20, n=40, profile="p"),
        # a streamed turn sends as it answers: a late link can hold its answer back
        SynthCell("q-stream-late", "realtime", publish="ws-persistent", llm_ms=60, streaming=True,
                  tokens=8, n=40, profile="q", flags=(LINK_LATE,)),
    ]))  # fmt: skip
    fit_cells, held, _ = lm.split(run, held_out=["q-held"])
    assert set(fit_cells) == {"q-stream", "p-gw"}
    assert lm.llm_only_cells(run, held) == ["q-whole"]  # never the held-out nor the lagged one
    rows, f, rule = lm.model_rows(run, held_out=["q-held"])
    assert f.llm_cells == ["q-whole"] and "q-whole" not in f.cells
    assert "model answer times" in rule
    whole = np.asarray(f.llm_ms[lm.llm_mode_key("q", False)])
    assert np.median(whole.sum(axis=1)) == pytest.approx(20.0, abs=0.5)
    streamed = np.median(np.asarray(f.llm_ms[lm.llm_mode_key("q", True)]).sum(axis=1))
    assert streamed == pytest.approx(27.0, abs=0.5)
    # nothing but the LLM: the 5 ms processing of the flagged cell is not the gateway's
    assert np.median(np.asarray(f.proc_ms["gateway"])[:, 0]) < 2.0
    # so the held-out unstreamed cell is predicted from unstreamed times
    held_row = rows.set_index("cell").loc["q-held"]
    assert held_row["llm_ms"] == pytest.approx(20.0, abs=1.0)
