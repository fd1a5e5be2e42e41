from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from travelagent.analysis.load import Run, load_run
from travelagent.analysis.model import leg_predictions, model_legs, model_table
from travelagent.analysis.synth import SynthCell, link, write_synthetic_run

LINKS = {
    "client_worker": link(8),
    "client_realtime": link(12),
    "realtime_worker": link(20),
    "worker_realtime": link(25, setup_rtts=2),
    "worker_agents": link(4),
}


def _run(tmp_path: Path, **kw: Any) -> Run:
    cells = [
        SynthCell("g", "gateway", links=LINKS, proc_ms=0, n=20, **kw),
        SynthCell("new", "realtime", "http-new", links=LINKS, proc_ms=0, n=20, **kw),
        SynthCell("pooled", "realtime", "http-pooled", links=LINKS, proc_ms=0, n=20, **kw),
        SynthCell("ws", "realtime", "ws-persistent", links=LINKS, proc_ms=0, n=20, **kw),
        SynthCell("sep", "gateway", links=LINKS, proc_ms=0, n=20, agents_separate=True, **kw),
    ]
    return load_run(write_synthetic_run(tmp_path, cells))


def test_hop_model_matches_a_run_with_known_delays(tmp_path: Path) -> None:
    mt = model_table(_run(tmp_path)).set_index("cell")
    llm = 80.0
    assert mt.loc["g", "predicted_ms"] == pytest.approx(8 + 8 + llm)
    # a new connection per publish pays setup_rtts x 2 x delay of worker_realtime
    assert mt.loc["new", "setup_ms"] == pytest.approx(2 * 2 * 25)
    assert mt.loc["new", "predicted_ms"] == pytest.approx(12 + 20 + 25 + 12 + 100 + llm)
    assert mt.loc["pooled", "setup_ms"] == 0 and mt.loc["ws", "setup_ms"] == 0
    assert mt.loc["sep", "predicted_ms"] == pytest.approx(8 + 4 + 4 + 8 + llm)
    # no processing time and no noise: the model explains everything
    assert mt["error_ms"].abs().max() == pytest.approx(0, abs=1e-6)
    assert (mt["llm_source"] == "stamps").all()


def test_hop_model_error_shows_what_the_model_does_not_know(tmp_path: Path) -> None:
    mt = model_table(_run(tmp_path, noise_ms=5.0)).set_index("cell")
    # exponential noise (mean 5 ms) on every leg: measured is slower than predicted; on the
    # gateway's two legs by the median of a gamma(2, 5 ms), about 8.4 ms
    assert (mt["error_ms"] > 0).all()
    assert mt.loc["g", "error_ms"] == pytest.approx(8.4, rel=0.5)


def test_leg_by_leg_predictions_match_measured_legs(tmp_path: Path) -> None:
    legs = model_legs(_run(tmp_path))
    assert legs["error_ms"].abs().max() == pytest.approx(0, abs=1e-6)
    new = legs[legs["cell"] == "new"].set_index("leg")
    assert new.loc["worker→realtime", "predicted_ms"] == pytest.approx(25 + 100)


def test_bandwidth_adds_transfer_time_on_the_leg_back_to_the_client() -> None:
    links = {"client_worker": link(10, bandwidth_kbps=80)}
    legs = leg_predictions(links, "gateway", "", reply_bytes=1000)
    assert legs["transfer_ms"].tolist() == [0.0, pytest.approx(100.0)]


def test_llm_time_can_be_given_instead_of_measured(tmp_path: Path) -> None:
    mt = model_table(_run(tmp_path), llm_ms={"g": 10.0}).set_index("cell")
    assert mt.loc["g", "predicted_ms"] == pytest.approx(26.0)
    assert mt.loc["g", "llm_source"] == "given"


def test_model_csv_has_one_row_per_measured_cell_with_the_contract_columns(
    tmp_path: Path,
) -> None:
    from travelagent.analysis.report import model_csv

    cells = [SynthCell("g", "gateway", n=20), SynthCell("r", "realtime", "http-new", n=20)]
    run = load_run(write_synthetic_run(tmp_path, cells))
    out = model_csv(run)
    assert list(out.columns[:5]) == [
        "cell", "held_out", "measured_p50_ms", "predicted_p50_ms", "error_pct"
    ]  # fmt: skip
    assert sorted(out["cell"]) == ["g", "r"] and not out["held_out"].any()
    assert (out["error_pct"].abs() < 50).all()
