from __future__ import annotations

from pathlib import Path

from travelagent.analysis.load import load_run
from travelagent.analysis.loadcurve import knees, load_table, windows
from travelagent.analysis.synth import SynthCell, write_synthetic_run


def test_knee_is_where_the_corrected_tail_doubles(tmp_path: Path) -> None:
    cells = [
        SynthCell(f"u{u}", "gateway", users=u, rate_per_s=2.0 * u, n=100, queue_ms=q)
        for u, q in ((1, 0.0), (5, 1.0), (20, 200.0), (40, 400.0))
    ]
    lt = load_table(load_run(write_synthetic_run(tmp_path, cells)))
    assert lt["offered_rps"].round(1).tolist() == [2.0, 10.0, 40.0, 80.0]
    assert lt["past_knee"].tolist() == [False, False, True, True]
    # the correction is what queueing before the send adds; service time does not see it
    assert (lt["corrected_p99_ms"] >= lt["service_p99_ms"]).all()
    k = knees(lt).iloc[0]
    assert k["knee_cell"] == "u20" and k["last_ok_offered_rps"] == lt["offered_rps"].iloc[1]


def test_errors_show_up_as_an_error_rate(tmp_path: Path) -> None:
    lt = load_table(load_run(write_synthetic_run(tmp_path, [
        SynthCell("g", "gateway", n=20, fail_every=4)])))  # fmt: skip
    assert lt["error_rate"].iloc[0] == 0.25


def test_windows_show_the_load_and_latency_second_by_second(tmp_path: Path) -> None:
    cell = SynthCell("g", "gateway", users=4, rate_per_s=10.0, n=50)
    run = load_run(write_synthetic_run(tmp_path, [cell]))
    w = windows(run, "g", window_s=1.0)
    assert w["t_s"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert w["offered_rps"].tolist() == [10.0] * 5
    assert (w["service_p50_ms"] > 100).all()
    assert windows(run, "no-such-cell").empty
