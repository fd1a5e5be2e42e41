from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from travelagent.runner.experiment import (
    ExperimentError,
    apply_overrides,
    load_experiment,
    parse_experiment,
)
from travelagent.runner.messages import MIXES, load_mix
from travelagent.runner.run import locust_command

ROOT = Path(__file__).resolve().parents[2]


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "x",
        "durations_s": [3],
        "scenarios": [{"name": "gw", "preset": "loopback", "arch": "gateway"}],
        "shapes": [{"name": "u1", "kind": "constant", "users": 1}],
    }
    data.update(changes)
    return data


def test_cells_are_the_product_of_scenarios_shapes_durations_and_repetitions() -> None:
    exp = parse_experiment(
        minimal(
            durations_s=[3, 5],
            repetitions=2,
            shapes=[{"name": "a", "users": 1}, {"name": "b", "users": 3}],
        )
    )
    cells = exp.cells()
    assert len(cells) == 1 * 2 * 2 * 2
    assert len({c.name for c in cells}) == len(cells)
    assert cells[0].name == "gw-a-3s-r1"
    assert {c.shape.duration_s for c in cells} == {3.0, 5.0}


def test_overrides_reach_the_resolved_scenario() -> None:
    exp = parse_experiment(
        minimal(
            scenarios=[
                {
                    "name": "rt",
                    "preset": "note",
                    "arch": "realtime",
                    "overrides": {"worker.publish": "ws-persistent", "worker.stream": False},
                }
            ]
        )
    )
    entry = exp.scenarios[0]
    assert entry.publish == "ws-persistent" and entry.streaming is False
    assert entry.scenario.to_dict()["worker"]["publish"] == "ws-persistent"


def test_apply_overrides_does_not_touch_the_original() -> None:
    data = {"worker": {"publish": "http-new"}}
    out = apply_overrides(data, {"worker.publish": "http-pooled", "llm.profile": "instant"})
    assert data == {"worker": {"publish": "http-new"}}
    assert out == {"worker": {"publish": "http-pooled"}, "llm": {"profile": "instant"}}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"durations_s": []}, "durations_s"),
        ({"durations_s": [0]}, "durations_s"),
        ({"repetitions": 0}, "repetitions"),
        ({"colour": "red"}, "colour is not an experiment key"),
        ({"scenarios": []}, "scenarios"),
        ({"scenarios": [{"preset": "loopback", "arch": "pigeon"}]}, "arch must be one of"),
        ({"scenarios": [{"arch": "gateway"}]}, "preset is required"),
        ({"scenarios": [{"preset": "nowhere-preset", "arch": "gateway"}]}, "nowhere-preset"),
        (
            {
                "scenarios": [
                    {
                        "preset": "loopback",
                        "arch": "gateway",
                        "overrides": {"worker.publish": "pigeon"},
                    }
                ]
            },
            "publish",
        ),
        ({"shapes": [{"kind": "square"}]}, r"shapes\[0\]"),
        ({"shapes": [{"name": "a", "users": 1}, {"name": "a", "users": 2}]}, "unique"),
        ({"load": {"pace": "sideways"}}, "load.pace"),
        ({"load": {"think": 3}}, "load.think is not a load setting"),
        ({"load": {"timeout_s": "soon"}}, "load.timeout_s"),
        ({"name": "has space"}, "name"),
        # each of these once escaped as ValueError, OverflowError, IsADirectoryError or
        # TOMLDecodeError, or was accepted (nan, inf, a fraction of a process)
        ({"load": {"processes": float("nan")}}, "load.processes"),
        ({"load": {"processes": float("inf")}}, "load.processes"),
        ({"load": {"processes": 1.5}}, "load.processes must be a whole number"),
        ({"load": {"think_ms": float("nan")}}, "load.think_ms"),
        ({"load": {"start_spread_ms": -1}}, "load.start_spread_ms"),
        ({"load": {"start_spread_ms": float("inf")}}, "load.start_spread_ms"),
        ({"durations_s": [float("inf")]}, "durations_s"),
        ({"retry_flagged": -1}, "retry_flagged must be a whole number from 0 to 5"),
        ({"retry_flagged": 6}, "retry_flagged"),
        ({"retry_flagged": True}, "retry_flagged"),
        ({"retry_flagged": "1"}, "retry_flagged"),
        ({"retry_budget_s": -1}, "retry_budget_s"),
        ({"retry_budget_s": float("nan")}, "retry_budget_s"),
        ({"shapes": [{"users": 1, "spawn_rate": float("nan")}]}, "spawn_rate.*finite"),
        ({"scenarios": [{"name": "s", "preset": "a\x00b", "arch": "gateway"}]}, "a.x00b"),
        ({"scenarios": [{"name": "s", "preset": "x" * 5000, "arch": "gateway"}]}, "xxx"),
        ({"scenarios": [{"name": "s", "preset": str(ROOT), "arch": "gateway"}]}, "cannot read"),
        (
            {"scenarios": [{"name": "s", "preset": str(ROOT / "README.md"), "arch": "gateway"}]},
            "cannot read",
        ),
    ],
)
def test_bad_experiments_are_refused_with_the_key_named(changes: dict, match: str) -> None:
    with pytest.raises(ExperimentError, match=match):
        parse_experiment(minimal(**changes), source="exp.toml")


def test_default_experiment_has_every_path_of_the_note_repeated_and_interleaved() -> None:
    default = load_experiment("default")
    arches = {(e.arch, e.publish, e.streaming) for e in default.scenarios}
    # gateway, 3 publish modes, the streamed baseline, hybrid: one factor apart per claim
    assert arches == {
        ("gateway", "", False),
        ("realtime", "http-new", False),
        ("realtime", "http-pooled", False),
        ("realtime", "ws-persistent", False),
        ("realtime", "http-new", True),
        ("hybrid", "", False),
    }
    cells = default.cells()
    assert default.repetitions >= 3 and len(cells) == 6 * default.repetitions
    # interleaved: every configuration once before any is repeated
    first = [c.entry.name for c in cells[:6]]
    assert len(set(first)) == 6 and all(c.repetition == 1 for c in cells[:6])
    assert {e.scenario.name for e in default.scenarios} == {"note"}
    assert len(load_experiment("tiny").cells()) == 2


def test_missing_experiment_file_names_the_known_ones() -> None:
    with pytest.raises(ExperimentError, match="tiny"):
        load_experiment("no-such-experiment")


def test_locust_command_carries_the_cell_settings(tmp_path: Path) -> None:
    exp = parse_experiment(
        minimal(
            scenarios=[
                {
                    "name": "rt",
                    "preset": "loopback",
                    "arch": "realtime",
                    "overrides": {"worker.publish": "http-new", "worker.stream": False},
                }
            ],
            shapes=[{"name": "cr", "kind": "constant-rate", "target_rps": 10, "rate_per_user": 2}],
            load={"processes": 2},
        )
    )
    cell = exp.cells()[0]
    cmd = locust_command(
        cell, urls={"gateway": "ws://g", "realtime": "ws://r"}, cell_dir=tmp_path, run_id="R"
    )
    flags = {name: cmd[cmd.index(name) + 1] for name in cmd if name.startswith("--")}
    assert flags["--arch"] == "realtime" and flags["--publish"] == "http-new"
    assert flags["--stream"] == "false" and flags["--pace"] == "open"
    assert flags["--rate-per-user"] == "2" and flags["--users"] == "5"
    assert flags["--shape"] == "constant-rate" and flags["--processes"] == "2"
    assert flags["--realtime-url"] == "ws://r" and flags["--run-id"] == "R"


def test_message_mixes_by_name_or_file(tmp_path: Path) -> None:
    assert load_mix("default") == MIXES["default"]
    f = tmp_path / "q.txt"
    f.write_text("Where to?\n\n  Rome  \n")
    assert load_mix(str(f)) == ("Where to?", "Rome")
    f.write_text("\n")
    with pytest.raises(ValueError, match="no messages"):
        load_mix(str(f))
    with pytest.raises(ValueError, match="neither"):
        load_mix("nonexistent-mix")


def test_cli_dry_run_lists_cells_and_bad_file_exits_2(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "travelagent", "run"]
    ok = subprocess.run([*run, "tiny", "--dry-run"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "2 cells" in ok.stdout and "gateway-u2-3s" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndurations_s = [3]\n[[scenarios]]\npreset = "loopback"\n')
    res = subprocess.run([*run, str(bad), "--dry-run"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert "arch must be one of" in res.stderr and "Traceback" not in res.stderr
