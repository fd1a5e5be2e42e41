"""The conditions model on synthetic runs whose delays are known, and its hold-out bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from travelagent.analysis import latency_model as lm
from travelagent.analysis.load import Run, load_run
from travelagent.analysis.synth import SynthCell, link, write_synthetic_run

PROFILE = "llama-8b-local-like"  # token interval 10-25 ms: mean 17.5
TOKENS = 40
LLM_FIRST = 150.0
LLM_MS = LLM_FIRST + (TOKENS - 1) * 17.5  # so B / mean interval + 1 counts the tokens


def links(client: float, service: float) -> dict[str, dict[str, Any]]:
    return {
        "client_worker": link(client, setup_rtts=2),
        "client_realtime": link(client, setup_rtts=2),
        "realtime_worker": link(service, setup_rtts=2),
        "worker_realtime": link(service, setup_rtts=2),
        "worker_agents": link(1),
    }


def cells_at(tag: str, lk: dict[str, dict[str, Any]], **kw: Any) -> list[SynthCell]:
    common: dict[str, Any] = {"links": lk, "llm_first_ms": LLM_FIRST, "llm_ms": LLM_MS}
    common.update(profile=PROFILE, n=40, proc_ms=0.5, **kw)
    return [
        SynthCell(f"{tag}-gateway", "gateway", **common),
        SynthCell(f"{tag}-rt-new", "realtime", "http-new", **common),
        SynthCell(f"{tag}-rt-pooled", "realtime", "http-pooled", **common),
        SynthCell(f"{tag}-rt-ws", "realtime", "ws-persistent", **common),
        SynthCell(
            f"{tag}-rt-new-stream", "realtime", "http-new", streaming=True, tokens=TOKENS, **common
        ),
        SynthCell(
            f"{tag}-rt-pooled-stream",
            "realtime",
            "http-pooled",
            streaming=True,
            tokens=TOKENS,
            **common,
        ),
        SynthCell(f"{tag}-hybrid", "hybrid", **common),
    ]


def _run(tmp_path: Path, *, far_noise: float = 0.0) -> Run:
    cells = cells_at("near", links(5, 2)) + cells_at("far", links(60, 40), noise_ms=far_noise)
    return load_run(write_synthetic_run(tmp_path, cells))


def _held(run: Run) -> list[str]:
    return [c for c in run.cells["cell"] if str(c).startswith("far-")]


def test_the_model_reproduces_known_delays_on_held_out_conditions(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rows, fit, rule = lm.model_rows(run, held_out=_held(run))
    assert rule == "cells named by the caller"
    assert len(rows) == 14 and rows["held_out"].sum() == 7
    # every cell, fitted or held out (other link delays), streamed or not, within 1%
    assert rows["error_pct"].abs().max() < 1.0, rows[["cell", "error_pct"]]
    # the streamed cells' first chunk and their wait for the drain are reproduced too
    s = rows[rows["streaming"]].set_index("cell")
    err_first = (s["predicted_first_p50_ms"] - s["measured_first_p50_ms"]) / s[
        "measured_first_p50_ms"
    ]
    assert err_first.abs().max() < 0.01, err_first
    assert (s["drain_ms"] > 0).all()  # the final frame did wait for the chunks
    # the token count came from the stamps: B / mean interval + 1
    assert pd.Series(fit.tokens).median() == pytest.approx(TOKENS, rel=1e-3)
    # the synthetic publish path has no service time beyond its 0.5 ms processing steps
    assert fit.publish_service_ms.get("http-new", 0.0) <= 1.0


def test_a_streamed_reply_over_new_connections_waits_for_each_round_trip(tmp_path: Path) -> None:
    # far: 40 ms one way, 2 set-up round trips: a publication takes 80 + 160 = 240 ms. The
    # start frame goes at 0; tokens are due at 150 + 17.5 i. Publications start at 240 (tokens
    # 0-5), 480 (6-18), 720 (19-32) and 960 (33-39), so the drain is empty at 1200 ms, and the
    # final frame waits 1200 - 832.5 ms after the answer's last token (less the commit's
    # 0.5 ms, plus the fitted service time per publication).
    run = _run(tmp_path)
    rows, _, _ = lm.model_rows(run, held_out=_held(run))
    r = rows.set_index("cell").loc["far-rt-new-stream"]
    assert r["drain_ms"] == pytest.approx(1200 - LLM_MS, abs=4.0)


def test_held_out_cells_never_enter_the_fit(tmp_path: Path) -> None:
    clean = _run(tmp_path / "a")
    noisy = _run(tmp_path / "b", far_noise=40.0)  # the held-out cells are very different
    f_clean = lm.fit(clean, lm.split(clean, _held(clean))[0])
    f_noisy = lm.fit(noisy, lm.split(noisy, _held(noisy))[0])
    assert not set(f_clean.cells) & set(_held(clean))
    assert json.dumps(f_clean.overhead_ms) == json.dumps(f_noisy.overhead_ms)
    assert f_clean.proc_ms == f_noisy.proc_ms and f_clean.llm_ms == f_noisy.llm_ms
    rows_clean, _, _ = lm.model_rows(clean, held_out=_held(clean))
    rows_noisy, _, _ = lm.model_rows(noisy, held_out=_held(noisy))
    pc = rows_clean.set_index("cell")["predicted_p50_ms"]
    pn = rows_noisy.set_index("cell")["predicted_p50_ms"]
    assert (pc == pn).all()  # the same fit predicts the same, whatever the held-out cells hold
    # and the noisy held-out cells show up as errors, not as a refit
    assert rows_noisy[rows_noisy["held_out"]]["error_pct"].abs().max() > 5


def test_split_follows_the_experiment_files_marks(tmp_path: Path) -> None:
    run = _run(tmp_path)
    marked = {"far-gateway", "far-rt-new"}
    run.meta["experiment"] = {
        "scenarios": [{"name": str(c), "held_out": c in marked} for c in run.cells["cell"]]
    }
    fit_cells, held, rule = lm.split(run)
    assert held == ["far-gateway", "far-rt-new"] and "held_out" in rule
    assert "far-rt-new-stream" in fit_cells  # a longer name that only starts like a marked one
    run.meta["experiment"] = {}
    _, held, rule = lm.split(run)
    assert held == [] and "none held out" in rule


def test_a_fit_round_trips_and_carries_its_bands(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _, fit, _ = lm.model_rows(run, held_out=_held(run))
    assert fit.bands["all"][1] == 7 and fit.bands["gateway"][1] == 1
    back = lm.Fit.load(fit.save(tmp_path / "fit.json"))
    lk = links(30, 10)
    a = lm.predict(fit, lk, PROFILE, "rt-ws", n=500)
    b = lm.predict(back, lk, PROFILE, "rt-ws", n=500)
    assert a.p50_ms == b.p50_ms
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(lm.ModelError, match="not a model fit"):
        lm.Fit.load(tmp_path / "bad.json")
    with pytest.raises(lm.ModelError, match="unknown path"):
        lm.predict(fit, lk, PROFILE, "carrier-pigeon")


def test_an_unmeasured_profile_is_simulated_from_its_ranges(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _, fit, _ = lm.model_rows(run, held_out=_held(run))
    p = lm.predict(fit, links(15, 5), "gpt-4o-mini-like", "gateway", n=4000)
    assert p.llm_source == "simulated from the profile"
    # TTFT 300-700 (mean 500) + 39 intervals of 7.5-15 ms (mean 11.25): ~939 ms, + 30 ms network
    assert p.p50_ms == pytest.approx(500 + 39 * 11.25 + 30 + 1.5, rel=0.03)


def test_the_publication_time_is_the_median_of_each_streamed_cells_own_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each streamed fit cell estimates the time per publication on its own, against its own
    # measured drain wait; the fit takes the median of the estimates per publish mode
    run = _run(tmp_path)
    own = {"near-rt-new-stream": 1.0, "far-rt-new-stream": 15.0,
           "near-rt-pooled-stream": 2.0, "far-rt-pooled-stream": 4.0}  # fmt: skip
    seen: list[tuple[str, float]] = []

    def estimate(f: Any, info: Any, work: dict, publish: str, target: float, seed: int) -> float:
        (cell,) = work
        seen.append((cell, target))
        return own[cell]

    monkeypatch.setattr(lm, "_service_for", estimate)
    f = lm.fit(run, [c for c in run.cells["cell"]])
    assert sorted(c for c, _ in seen) == sorted(own)
    assert f.publish_service_ms == {"http-new": 8.0, "http-pooled": 3.0}
    # each cell's target is its own measured median drain wait
    drains = lm.message_parts(run).groupby("cell")["drain"].median()
    assert all(t == pytest.approx(float(drains[c])) for c, t in seen)
