"""``travelagent predict`` on a scenario file, from a fit written by the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from travelagent.analysis import latency_model as lm
from travelagent.analysis.load import load_run
from travelagent.analysis.synth import SynthCell, link, write_synthetic_run
from travelagent.cli import main

SCENARIO = """
name = "what-if"
seed = 1
[llm]
backend = "simulated"
profile = "llama-8b-local-like"
[links.client_worker]
delay_ms = 40.0
setup_rtts = 2
[links.client_realtime]
delay_ms = 40.0
setup_rtts = 2
[links.realtime_worker]
delay_ms = 10.0
setup_rtts = 2
[links.worker_realtime]
delay_ms = 10.0
setup_rtts = 2
"""


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    lk = {n: link(d, setup_rtts=2) for n, d in (("client_worker", 5), ("client_realtime", 5),
                                                ("realtime_worker", 2), ("worker_realtime", 2),
                                                ("worker_agents", 1))}  # fmt: skip
    common: dict[str, Any] = {"links": lk, "llm_first_ms": 150.0, "llm_ms": 150 + 39 * 17.5,
              "profile": "llama-8b-local-like", "n": 30}  # fmt: skip
    cells = [
        SynthCell("gateway", "gateway", **common),
        SynthCell("rt-ws", "realtime", "ws-persistent", **common),
        SynthCell("rt-new-stream", "realtime", "http-new", streaming=True, tokens=40, **common),
    ]
    run = load_run(write_synthetic_run(root, cells))
    _, fit, _ = lm.model_rows(run, held_out=["rt-ws"])
    return fit.save(root / "model_fit.json")


def test_predict_prints_each_path_from_a_scenario_file(
    fit_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scen = tmp_path / "what-if.toml"
    scen.write_text(SCENARIO)
    rc = main(["predict", "--fit", str(fit_file), "--path", "gateway", "--path", "rt-new-stream",
               "--samples", "1000", str(scen)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "client RTT 80 ms, worker-realtime RTT 20 ms, LLM llama-8b-local-like" in out
    assert "the fit given with --fit" in out and "measured in the fit cells" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("gateway "))
    p50 = float(line.split()[1])
    # 2 x 40 ms of client links + the measured LLM (832.5 ms) + 1.5 ms of processing
    assert p50 == pytest.approx(80 + 832.5 + 1.5, rel=0.01)
    stream = next(ln for ln in out.splitlines() if ln.startswith("rt-new-stream "))
    # only rt-ws was held out: the other paths borrow the band of every held-out cell, and say so
    assert "held-out cells of every path" in stream and "held-out cells of every path" in line
    # --client-rtt-ms overrides the file's client links
    assert main(["predict", "--fit", str(fit_file), "--path", "gateway", "--samples", "1000",
                 "--client-rtt-ms", "10", str(scen)]) == 0  # fmt: skip
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("gateway "))
    assert float(line.split()[1]) == pytest.approx(10 + 832.5 + 1.5, rel=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client-rtt-ms", "-5"], "--client-rtt-ms must be a number >= 0"),
        (["--service-rtt-ms", "nan"], "--service-rtt-ms must be a number >= 0"),
        (["--llm", "gpt-9"], "unknown LLM profile 'gpt-9'"),
        (["--path", "pigeon"], "unknown path 'pigeon'"),
        (["no-such-scenario"], "no-such-scenario"),
        (["--samples", "3"], "--samples must be at least 100"),
    ],
)
def test_predict_refuses_bad_input_clearly(
    fit_file: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--fit", str(fit_file), *args]) == 2
    assert message in capsys.readouterr().err


def test_predict_says_when_nothing_was_held_out(
    fit_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = lm.Fit.load(fit_file)
    fit.bands = {}
    assert main(["predict", "--fit", str(fit.save(tmp_path / "f.json")), "--path", "rt-ws",
                 "--samples", "200"]) == 0  # fmt: skip
    assert "no held-out check: unvalidated" in capsys.readouterr().out


def test_predict_says_when_the_fit_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fit.json"
    bad.write_text("{not json")
    assert main(["predict", "--fit", str(bad)]) == 2
    assert "not a readable model fit" in capsys.readouterr().err
