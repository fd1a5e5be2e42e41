from __future__ import annotations

from pathlib import Path

import pytest

from travelagent.analysis.decompose import decompose_cells, decompose_hops, decompose_messages
from travelagent.analysis.load import load_run
from travelagent.analysis.synth import SynthCell, link, write_synthetic_run


def test_decomposition_adds_up_to_each_messages_service_time_exactly(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path, [
        SynthCell("rt", "realtime", "http-new", n=40, noise_ms=4.0, streaming=True),
        SynthCell("g", "gateway", n=40, noise_ms=4.0, agents_separate=True),
    ]))  # fmt: skip
    per = decompose_messages(run)
    assert len(per) == 80
    assert (per["network_ns"] + per["llm_ns"] + per["processing_ns"] == per["total_ns"]).all()
    svc = run.ok().set_index("msg_id")["service_ms"].astype(float)
    assert (per.set_index("msg_id")["total_ms"] == svc.loc[per["msg_id"]].to_numpy()).all()
    cells = decompose_cells(run).set_index("cell")
    parts = cells["network_ms"] + cells["llm_ms"] + cells["processing_ms"]
    assert parts.to_numpy() == pytest.approx(cells["total_ms"].to_numpy(), abs=1e-9)


def test_decomposition_recovers_known_delays(tmp_path: Path) -> None:
    links = {n: link(d) for n, d in (
        ("client_worker", 7), ("client_realtime", 11), ("realtime_worker", 13),
        ("worker_realtime", 17), ("worker_agents", 3),
    )}  # fmt: skip
    run = load_run(write_synthetic_run(tmp_path, [
        SynthCell("rt", "realtime", "http-pooled", n=5, links=links, llm_ms=90, proc_ms=2),
    ]))  # fmt: skip
    per = decompose_messages(run).iloc[0]
    assert per["network_ms"] == pytest.approx(11 + 13 + 17 + 11)
    assert per["http_ms"] == pytest.approx(13 + 17)
    assert per["llm_ms"] == pytest.approx(90)
    # realtime.recv->webhook, worker.recv->agent.start, llm.done->agent.done,
    # agent.done->worker.publish, realtime.publish->deliver: five processing hops of 2 ms
    assert per["processing_ms"] == pytest.approx(10)
    dh = decompose_hops(run)
    assert dh["hop"].tolist()[:3] == ["client→realtime", "realtime.recv→realtime.webhook",
                                      "realtime→worker"]  # fmt: skip


def test_run_without_ok_messages_decomposes_to_nothing(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=2, fail_every=1)]))
    assert decompose_messages(run).empty
    assert decompose_cells(run).empty
