"""Experiment files with a grid of conditions and measured points (runner.conditions)."""

from __future__ import annotations

from typing import Any

import pytest

from travelagent.runner.conditions import Grid, Level, Point, point_links
from travelagent.runner.experiment import ExperimentError, load_experiment, parse_experiment


def _exp(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "grid",
        "durations_s": [2],
        "scenarios": [
            {"name": "gw", "preset": "note", "arch": "gateway"},
            {"name": "rt", "preset": "note", "arch": "realtime"},
        ],
        "shapes": [{"name": "u1", "kind": "constant", "users": 1}],
        "grid": {
            "client": [
                {"name": "metro", "rtt_ms": 5},
                {"name": "mobile", "rtt_ms": 250, "jitter_ms": 10, "jitter": "pareto"},
            ],
            "service": [{"name": "region", "rtt_ms": 2}],
            "llm": ["instant", "gpt-4o-mini-like"],
        },
        "points": [
            {"client": "metro", "service": "region", "llm": "instant"},
            {"client": "mobile", "service": "region", "llm": "instant", "held_out": True},
        ],
    }
    data.update(extra)
    return data


def test_every_scenario_runs_at_every_measured_point() -> None:
    e = parse_experiment(_exp())
    names = [c.name for c in e.cells()]
    at = ["metro.region.instant", "mobile.region.instant"]
    assert names == [f"{p}.{s}-u1-2s" for p in at for s in ("gw", "rt")]
    mobile = e.scenarios[2].scenario
    assert mobile.links["client_worker"].delay_ms == 125
    assert mobile.links["client_realtime"].jitter == "pareto"
    assert mobile.links["worker_realtime"].delay_ms == 1
    assert mobile.llm.profile == "instant"
    d = e.to_dict()
    assert [s["held_out"] for s in d["scenarios"]] == [False, False, True, True]
    assert d["grid"]["llm"] == ["instant", "gpt-4o-mini-like"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"points": [{"client": "moon", "service": "region", "llm": "instant"}]},
         "points[0].client 'moon' is not in grid.client"),
        ({"points": [{"client": "metro", "service": "region", "llm": "note"}]},
         "points[0].llm 'note' is not in grid.llm"),
        ({"points": [{"client": "metro", "service": "region", "llm": "instant",
                      "held_out": "yes"}]}, "held_out must be true or false"),
        ({"grid": {"client": [{"name": "x", "rtt_ms": -1}], "service": [], "llm": []}},
         "rtt_ms must be a number >= 0"),
        ({"grid": {"client": [{"name": "x", "rtt_ms": 1}], "service": [{"name": "y",
          "rtt_ms": 1}], "llm": ["gpt-9"]}}, "unknown LLM profile 'gpt-9'"),
    ],
)  # fmt: skip
def test_bad_grids_and_points_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_experiment(_exp(**change))


def test_the_sweep_file_measures_a_designed_subset() -> None:
    e = load_experiment("sweep")
    d = e.to_dict()
    grid = d["grid"]
    assert [c["rtt_ms"] for c in grid["client"]] == [5, 30, 150, 250]
    assert [s["rtt_ms"] for s in grid["service"]] == [2, 20, 80]
    assert len(grid["llm"]) == 4
    points = {s["point"]: s["held_out"] for s in d["scenarios"]}
    assert len(points) == 12 and sum(points.values()) == 4
    fitted = {p for p, held in points.items() if not held}
    for p, held in points.items():  # a held-out triple is never also fitted
        assert not (held and p in fitted)
    assert len(e.cells()) == 72


def test_point_links_sets_half_the_rtt_each_way() -> None:
    p = Point(Level("a", 40, 2.0), Level("b", 10), "instant")
    links = point_links(p, {"client_worker": {"setup_rtts": 2, "delay_ms": 0}})
    assert links["client_worker"] == {"setup_rtts": 2, "delay_ms": 20, "jitter_ms": 2.0,
                                      "jitter": "normal"}  # fmt: skip
    assert links["worker_realtime"]["delay_ms"] == 5
    assert len(Grid((p.client,), (p.service,), ("instant", "note")).points()) == 2
