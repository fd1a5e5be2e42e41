"""Two runs side by side: verdicts and the p50 of the time outside the LLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from travelagent.analysis.agreement import compare_runs, render
from travelagent.analysis.load import load_run
from travelagent.analysis.synth import SynthCell, default_links, write_synthetic_run
from travelagent.cli import main


def _cells(delay_ms: float) -> list[SynthCell]:
    return [
        SynthCell("gateway", "gateway", n=100, links=default_links(delay_ms), noise_ms=0.5),
        SynthCell("rt-ws", "realtime", "ws-persistent", n=100, noise_ms=0.5),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("agree")
    return {
        "a": write_synthetic_run(root, _cells(10.0), run_id="a", seed=1),
        "b": write_synthetic_run(root, _cells(10.0), run_id="b", seed=2),
        "slow": write_synthetic_run(root, _cells(12.0), run_id="slow", seed=3),
    }


def test_two_runs_of_one_setup_agree(runs: dict[str, Path]) -> None:
    result = compare_runs(load_run(runs["a"]), load_run(runs["b"]))
    assert result.verdicts_agree
    assert set(result.p50["config"]) == {"gateway", "rt-ws"}
    assert result.median_diff_pct < 2.0
    for _, r in result.p50.iterrows():  # the difference's interval covers no difference
        assert r["diff_ci_low"] <= 0 <= r["diff_ci_high"]
        assert r["n_a"] == r["n_b"] == 100
    assert result.agree
    assert "verdicts: " in render(result, "a", "b")


def test_a_slower_link_shows_as_a_difference_beyond_noise(runs: dict[str, Path]) -> None:
    result = compare_runs(load_run(runs["a"]), load_run(runs["slow"]))
    gw = result.p50.set_index("config").loc["gateway"]
    # the gateway's two legs each take 2 ms more of ~21 ms outside the LLM: about +19%
    assert 15.0 < gw["diff_pct"] < 23.0
    assert gw["diff_ci_low"] > 0
    rt = result.p50.set_index("config").loc["rt-ws"]
    assert abs(rt["diff_pct"]) < 2.0  # its links did not change
    assert result.worst_diff_pct == pytest.approx(gw["diff_pct"])
    assert not result.p50_agree or result.median_diff_pct <= 2.0


def test_cli_exit_status_and_csv(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agree", str(runs["a"]), str(runs["b"]), "--out", str(tmp_path)]) == 0
    assert "p50 outside the LLM" in capsys.readouterr().out
    assert (tmp_path / "verdicts.csv").read_text().startswith("claim_id,verdict_a,verdict_b")
    assert (tmp_path / "p50.csv").exists()
    # a tolerance of 0 cannot be met by two noisy runs
    assert main(["agree", str(runs["a"]), str(runs["slow"]), "--tolerance-pct", "0"]) == 1


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agree", str(tmp_path / "nope"), str(tmp_path / "nada")]) == 2
    assert "travelagent agree:" in capsys.readouterr().err
    assert main(["agree", "a", "b", "--tolerance-pct", "-1"]) == 2
