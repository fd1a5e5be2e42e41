from __future__ import annotations

import json
from pathlib import Path

import pytest

from travelagent.analysis.load import RunError, latest_run, load_run, load_runs, locust_stats
from travelagent.analysis.synth import SynthCell, write_synthetic_run
from travelagent.client.records import MessageRecord, Recorder
from travelagent.client.runinfo import write_run_json


def test_run_loads_messages_stamps_cells_and_exact_latencies(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=10, fail_every=5)])
    run = load_run(path)
    assert run.run_id == "synthetic"
    assert len(run.messages) == 10
    assert len(run.ok()) == 8
    assert list(run.cells["cell"]) == ["g"]
    assert run.cells.loc["g", "messages"] == 10 and run.cells.loc["g", "ok"] == 8
    m = run.ok().iloc[0]
    assert m["service_ms"] == (m["recv_ns"] - m["send_ns"]) / 1e6
    # nanosecond integers survive loading (no detour through float)
    assert str(run.messages["send_ns"].dtype) == "Int64"
    assert run.messages.loc[run.messages["status"] != "ok", "service_ms"].isna().all()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        load_run(tmp_path / "nope")


def test_directory_without_run_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)


def test_broken_run_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        load_run(tmp_path)


def test_unfinalized_run_is_read_from_its_part_files(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r1", tag="t")
    rec.add(MessageRecord("r1", "c", "gateway", "", False, "u", "u", "m1", 1, 2, 5, 7))
    rec.flush()
    run = load_run(tmp_path / "r1")
    assert list(run.messages["msg_id"]) == ["m1"]
    assert run.messages["service_ms"].iloc[0] == pytest.approx(5e-6)


def test_latest_run_is_the_one_started_last(tmp_path: Path) -> None:
    assert latest_run(tmp_path) is None
    for name, started in (("b", "2026-01-02T00:00:00"), ("a", "2026-01-03T00:00:00")):
        write_run_json(tmp_path / name, {"started": started, "cells": []})
    (tmp_path / "not-a-run").mkdir()
    assert latest_run(tmp_path) == tmp_path / "a"


def test_several_runs_load_as_one_with_cells_kept_apart(tmp_path: Path) -> None:
    a = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=3)], run_id="a")
    b = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=4)], run_id="b", seed=1)
    run = load_runs([a, b])
    assert sorted(run.messages["cell"].unique()) == ["a/g", "b/g"]
    assert len(run.hops) == 7 * 7  # seven hops per gateway message
    assert json.loads(json.dumps(run.meta["runs"][0]["run_id"])) == "a"


def test_locust_csv_files_are_read_per_cell_when_present(tmp_path: Path) -> None:
    path = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=3)])
    assert locust_stats(load_run(path)).empty
    (path / "cells" / "g").mkdir(parents=True)
    (path / "cells" / "g" / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count\nWS,gateway,3,0\n,Aggregated,3,0\n"
    )
    (path / "cells" / "h").mkdir()
    (path / "cells" / "h" / "locust_stats.csv").write_bytes(b"\x00\xff garbage")
    ls = locust_stats(load_run(path))
    assert ls["cell"].tolist() == ["g", "g"]
    assert ls["Request Count"].tolist() == [3, 3]
