from __future__ import annotations

from pathlib import Path

import pandas as pd

from travelagent.analysis.hops import hop_counts, message_hop_counts
from travelagent.analysis.load import Run, load_run
from travelagent.analysis.synth import SynthCell, write_synthetic_run


def _run(tmp_path: Path, cells: list[SynthCell]) -> Run:
    return load_run(write_synthetic_run(tmp_path, cells))


def test_hop_counts_are_counted_from_the_stamps(tmp_path: Path) -> None:
    run = _run(tmp_path, [
        SynthCell("g", "gateway", n=5),
        SynthCell("new", "realtime", "http-new", n=5),
        SynthCell("ws", "realtime", "ws-persistent", n=5),
    ])  # fmt: skip
    hc = hop_counts(run).set_index("publish")
    assert hc.loc["", "network_hops"] == 2 and hc.loc["", "traversals"] == 2
    # four one-way legs; the webhook POST and an HTTP publish are each answered once more
    assert hc.loc["http-new", "network_hops"] == 4 and hc.loc["http-new", "traversals"] == 6
    assert hc.loc["ws-persistent", "traversals"] == 5
    assert hc["within_claim"].all()


def test_a_separate_agent_host_adds_two_network_hops(tmp_path: Path) -> None:
    run = _run(tmp_path, [SynthCell("g", "gateway", n=3, agents_separate=True)])
    hc = hop_counts(run)
    assert hc["network_hops"].tolist() == [4]
    assert bool(hc["within_claim"].iloc[0]) is False
    names = set(run.hops.loc[run.hops["network"], "hop"])
    assert names == {"client→worker", "worker→agents", "agents→worker", "worker→client"}


def test_hops_of_a_message_sum_exactly_to_its_service_time(tmp_path: Path) -> None:
    run = _run(tmp_path, [
        SynthCell("rt", "realtime", "http-new", n=50, noise_ms=3.0, streaming=True),
        SynthCell("g", "gateway", n=50, noise_ms=3.0),
    ])  # fmt: skip
    total = run.hops.groupby("msg_id")["dur_ns"].sum()
    ok = run.ok().set_index("msg_id")
    expected = (ok["recv_ns"] - ok["send_ns"]).astype("int64")
    pd.testing.assert_series_equal(total.sort_index(), expected.sort_index(), check_names=False)
    # the streamed reply's first chunk is a marker, not a link of the chain: no negative hop
    assert (run.hops["dur_ns"] >= 0).all()
    assert not run.hops["to_name"].eq("client.first").any()


def test_hops_are_tagged_network_llm_or_processing(tmp_path: Path) -> None:
    run = _run(tmp_path, [SynthCell("rt", "realtime", "http-pooled", n=1)])
    h = run.hops.set_index("hop")
    assert h.loc["client→realtime", "category"] == "network"
    assert bool(h.loc["realtime→worker", "http"]) is True
    assert bool(h.loc["realtime→client", "http"]) is False
    assert h.loc["agent.start→llm.first", "category"] == "llm"
    assert h.loc["llm.first→llm.done", "category"] == "llm"
    assert h.loc["realtime.recv→realtime.webhook", "category"] == "processing"


def test_messages_missing_path_stamps_are_not_counted(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, [SynthCell("rt", "realtime", "http-new", n=4)])
    stamps = pd.read_parquet(path / "stamps.parquet")
    # as with a real Centrifugo in front of the worker: no realtime.* stamps
    stamps[~stamps["name"].str.startswith("realtime.")].to_parquet(path / "stamps.parquet")
    run = load_run(path)
    assert not message_hop_counts(run)["complete"].any()
    assert hop_counts(run).empty


def test_stamps_without_process_labels_get_them_from_their_names(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=2)])
    stamps = pd.read_parquet(path / "stamps.parquet")
    stamps["process"] = ""
    stamps.to_parquet(path / "stamps.parquet")
    hc = hop_counts(load_run(path))
    assert hc["network_hops"].tolist() == [2]
