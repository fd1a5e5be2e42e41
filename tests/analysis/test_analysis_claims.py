from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from travelagent.analysis.claims import CLAIMS, claims_table
from travelagent.analysis.load import load_run
from travelagent.analysis.synth import (
    SynthCell,
    default_links,
    link,
    standard_cells,
    write_synthetic_run,
)


def _verdicts(tmp_path: Path, cells: list[SynthCell]) -> dict[str, str]:
    ct = claims_table(load_run(write_synthetic_run(tmp_path, cells)))
    return dict(zip(ct["id"], ct["verdict"], strict=True))


def test_claims_table_has_every_claim_with_evidence_and_rationale(tmp_path: Path) -> None:
    ct = claims_table(load_run(write_synthetic_run(tmp_path, standard_cells(n=60))))
    assert list(ct["id"]) == [c[0] for c in CLAIMS]
    assert set(ct.columns) >= {"claim", "verdict", "evidence", "rationale", "numbers"}
    # the note-calibrated synthetic run confirms every claim
    assert (ct["verdict"] == "confirmed").all(), ct[["id", "verdict", "rationale"]]
    assert (ct["evidence"].str.len() > 0).all()


def test_claims_are_not_tested_when_the_run_lacks_their_cells(tmp_path: Path) -> None:
    v = _verdicts(tmp_path, [SynthCell("g", "gateway", n=30)])
    assert v["gateway_range"] == "confirmed"
    assert v["llm_bottleneck"] == "confirmed"
    for cid in (
        "hop_counts",
        "realtime_range",
        "gateway_lower",
        "http_bottleneck",
        "socket_lowers",
        "pooling_lowers",
        "streaming_lowers",
        "hybrid_keeps_gateway",
    ):
        assert v[cid] == "not tested", cid  # fmt: skip


def test_pooling_claim_is_refuted_when_new_connections_cost_nothing(tmp_path: Path) -> None:
    links = default_links(10)
    cells = [SynthCell("new", "realtime", "http-new", n=80, noise_ms=2.0),
             SynthCell("pooled", "realtime", "http-pooled", n=80, noise_ms=2.0)]  # fmt: skip
    assert _verdicts(tmp_path / "a", cells)["pooling_lowers"] == "confirmed"
    links["worker_realtime"] = link(10, setup_rtts=0)
    for c in cells:
        c.links = links
    assert _verdicts(tmp_path / "b", cells)["pooling_lowers"] == "refuted"


def test_llm_bottleneck_and_ranges_flip_with_a_fast_llm_on_a_slow_network(tmp_path: Path) -> None:
    cells = [SynthCell("g", "gateway", n=40, llm_ms=5, llm_first_ms=1, links=default_links(150)),
             SynthCell("rt", "realtime", "http-new", n=40, llm_ms=5, llm_first_ms=1,
                       links=default_links(150))]  # fmt: skip
    v = _verdicts(tmp_path, cells)
    assert v["llm_bottleneck"] == "refuted"
    assert v["gateway_range"] == "refuted"  # 300 ms of network alone
    assert v["realtime_range"] == "refuted"
    assert v["gateway_lower"] == "confirmed"


def test_gateway_lower_is_refuted_when_the_realtime_links_are_faster(tmp_path: Path) -> None:
    fast = default_links(10)
    fast["client_worker"] = link(80)
    cells = [
        SynthCell("g", "gateway", n=40, links=fast, noise_ms=1.0),
        SynthCell("rt", "realtime", "http-pooled", n=40, links=fast, noise_ms=1.0),
    ]
    assert _verdicts(tmp_path, cells)["gateway_lower"] == "refuted"


def test_hybrid_claim_is_refuted_when_hybrid_is_slower(tmp_path: Path) -> None:
    slow = default_links(10)
    slow["client_worker"] = link(10)
    g = SynthCell("g", "gateway", n=40, noise_ms=1.0)
    h = SynthCell("h", "hybrid", n=40, noise_ms=1.0, proc_ms=8.0)  # 4 x 8 ms of extra work
    assert _verdicts(tmp_path / "a", [g, h])["hybrid_keeps_gateway"] == "refuted"
    h2 = SynthCell("h", "hybrid", n=40, noise_ms=1.0)
    assert _verdicts(tmp_path / "b", [g, h2])["hybrid_keeps_gateway"] == "confirmed"


def test_streaming_claim_uses_time_to_first_chunk(tmp_path: Path) -> None:
    base = SynthCell("rt", "realtime", "http-new", n=40, noise_ms=1.0)
    streamed = SynthCell("rts", "realtime", "http-new", streaming=True, n=40, noise_ms=1.0)
    assert _verdicts(tmp_path / "a", [base, streamed])["streaming_lowers"] == "confirmed"
    # an LLM whose first token comes only at the end gains nothing from streaming
    late = SynthCell("rts", "realtime", "http-new", streaming=True, n=40, noise_ms=1.0,
                     llm_first_ms=80.0)  # fmt: skip
    assert _verdicts(tmp_path / "b", [base, late])["streaming_lowers"] == "refuted"


def test_http_bottleneck_is_refuted_when_client_legs_dominate(tmp_path: Path) -> None:
    links = default_links(5)
    links["client_realtime"] = link(100)
    cells = [SynthCell("rt", "realtime", "http-pooled", n=20, links=links)]
    assert _verdicts(tmp_path, cells)["http_bottleneck"] == "refuted"


def test_hop_count_claim_is_refuted_by_a_separate_agent_host(tmp_path: Path) -> None:
    cells = [SynthCell("g", "gateway", n=5, agents_separate=True),
             SynthCell("rt", "realtime", "http-new", n=5)]  # fmt: skip
    assert _verdicts(tmp_path, cells)["hop_counts"] == "refuted"


def test_a_claim_that_fails_to_evaluate_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import travelagent.analysis.claims as claims

    def boom(run: object) -> dict:
        raise RuntimeError("kaput")

    monkeypatch.setattr(claims, "CLAIMS", [("x", "a claim", boom)])
    ct = claims.claims_table(load_run(write_synthetic_run(tmp_path, [SynthCell("g", "gateway")])))
    assert ct["verdict"].tolist() == ["not tested"]
    assert "kaput" in ct["rationale"].iloc[0]


def test_a_run_where_every_path_streams_still_compares_the_paths(tmp_path: Path) -> None:
    # like the default experiment: gateway and hybrid streamed, realtime streamed and not
    cells = [
        SynthCell("g", "gateway", streaming=True, n=30, noise_ms=1.0),
        SynthCell("h", "hybrid", streaming=True, n=30, noise_ms=1.0),
        SynthCell("rt", "realtime", "http-new", n=30, noise_ms=1.0),
        SynthCell("rts", "realtime", "http-new", streaming=True, n=30, noise_ms=1.0),
    ]
    ct = claims_table(load_run(write_synthetic_run(tmp_path, cells))).set_index("id")
    assert ct.loc["gateway_lower", "verdict"] == "confirmed"
    assert dict(ct.loc["gateway_lower"]["numbers"])["base_cell"] == "rts"
    assert ct.loc["hybrid_keeps_gateway", "verdict"] == "confirmed"


def test_path_claims_are_not_fooled_by_cells_whose_llm_answers_ran_longer(tmp_path: Path) -> None:
    # the same path, but the hybrid cell happened to get longer answers from the LLM
    g = SynthCell("g", "gateway", n=40, noise_ms=1.0)
    h = SynthCell("h", "hybrid", n=40, noise_ms=1.0, llm_ms=130.0)
    ct = claims_table(load_run(write_synthetic_run(tmp_path, [g, h]))).set_index("id")
    assert ct.loc["hybrid_keeps_gateway", "verdict"] == "confirmed"
    assert "time outside the LLM" in str(ct.at["hybrid_keeps_gateway", "evidence"])
    numbers: dict[str, Any] = dict(ct.loc["hybrid_keeps_gateway"]["numbers"])
    assert numbers["variant_service_p50_ms"] - numbers["base_service_p50_ms"] > 40
