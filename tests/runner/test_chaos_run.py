"""A tiny chaos run through the real topology: one path, a control phase and a worker SIGKILL."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd

from travelagent.runner.chaos import parse_chaos, run_chaos
from travelagent.runner.count import COLUMNS


def test_a_worker_kill_is_counted_against_the_records_and_the_agent_store(
    tmp_path: Path, tf: float
) -> None:
    exp = parse_chaos({
        "kind": "chaos",
        "name": "chaos-test",
        "faults": ["none", "worker-kill"],
        "load": {"users": 2, "think_ms": 30, "timeout_s": 6 * tf},
        "phases": {"before_s": 0.4, "after_s": 1.2, "down_s": 0.2},
        "scenarios": [{"name": "gw", "preset": "chaos", "arch": "gateway"}],
    })  # fmt: skip
    run_dir = tmp_path / "run"
    assert run_chaos(exp, run_dir) == "ok"
    with open(run_dir / "chaos.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = {r["fault"]: r for r in reader}
    assert set(rows) == {"none", "worker-kill"}
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    phases = json.loads((run_dir / "cells" / "gw" / "phases.json").read_text())
    store = sqlite3.connect(run_dir / "cells" / "gw" / "topology" / "agents.sqlite3")
    for phase in phases:
        row = rows[phase["fault"]]
        n = {k: int(row[k]) for k in ("sent", "replied", "errored", "lost", "duplicated")}
        mine = msgs[msgs["user"].str.startswith(phase["prefix"] + "-u")]
        assert n["sent"] == len(mine) > 0
        assert n["replied"] == int((mine["status"] == "ok").sum())
        assert n["errored"] == int((mine["status"] == "error").sum())
        assert n["lost"] == int(mine["status"].isin(["lost", "timeout"]).sum())
        assert n["sent"] == n["replied"] + n["errored"] + n["lost"] + int(row["other"])
        # every ok reply was a committed turn of one of the phase's agents
        done = store.execute(
            "SELECT COUNT(*) FROM turns WHERE state = 'done' AND agent LIKE ?",
            (phase["prefix"] + "-u%",),
        ).fetchone()[0]
        assert done >= n["replied"]
        assert n["duplicated"] == 0, row
        assert row["recovery_s"] != "", row  # replies came back after the fault
    none = rows["none"]
    assert int(none["lost"]) == 0 and int(none["errored"]) == 0, none
    kill = phases[1]
    assert kill["inject_error"] == ""
    # the worker was really down: the first ok reply of a message sent after the kill came no
    # sooner than the restart
    assert (
        float(rows["worker-kill"]["recovery_s"])
        >= (kill["cleared_ns"] - kill["injected_ns"]) / 1e9 - 0.5
    )
    finals = (run_dir / "cells" / "gw" / "finals.csv").read_text().splitlines()
    assert finals[0] == "msg_id,finals" and len(finals) > 1
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "chaos" and info["status"] == "ok"
