"""Properties of experiment files: any TOML-shaped table parses or is an ExperimentError."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import TOML_VALUES

from travelagent.runner.experiment import Experiment, ExperimentError, parse_experiment

VALID: dict[str, Any] = {
    "name": "props",
    "description": "",
    "durations_s": [3],
    "repetitions": 1,
    "load": {"pace": "closed", "think_ms": 0, "timeout_s": 10, "processes": 1},
    "scenarios": [
        {
            "name": "gw",
            "preset": "loopback",
            "arch": "gateway",
            "overrides": {"worker.stream": True},
        }
    ],
    "shapes": [{"name": "u1", "kind": "constant", "users": 1}],
}
PATHS: list[tuple[Any, ...]] = [
    ("colour",),
    *((k,) for k in VALID),
    *(("load", k) for k in [*VALID["load"], "rate_per_user", "arrivals", "spawn_rate", "x"]),
    *(("scenarios", 0, k) for k in ["name", "preset", "arch", "overrides", "x"]),
    ("scenarios", 0, "overrides", "worker.publish"),
    ("scenarios", 0, "overrides", "links.client_worker.delay_ms"),
    *(("shapes", 0, k) for k in ["name", "kind", "users", "spawn_rate", "duration_s", "x"]),
    ("durations_s", 0),
]


def set_path(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, list):
        return [set_path(v, rest, value) if i == head else v for i, v in enumerate(data)]
    return {**data, head: set_path(data.get(head, {}), rest, value)}


@given(st.sampled_from(PATHS), TOML_VALUES)
def test_one_changed_value_parses_or_is_refused_naming_its_key(
    path: tuple[Any, ...], value: Any
) -> None:
    try:
        exp = parse_experiment(set_path(VALID, path, value), source="e.toml")
    except ExperimentError as err:
        message = str(err)
        # "scenario 'loopback' with overrides ...": the scenario parser's own error, quoted
        assert message.startswith(("e.toml: ", "scenario ")), message
        assert str(path[0]).rstrip("s") in message, (path, message)
    else:
        assert isinstance(exp, Experiment) and exp.cells()


@given(st.dictionaries(st.text(max_size=12), TOML_VALUES, max_size=6))
def test_any_table_parses_or_is_an_experiment_error(data: dict[str, Any]) -> None:
    try:
        parse_experiment(data)
    except ExperimentError as err:
        assert str(err)


def test_the_valid_base_parses() -> None:
    assert [c.name for c in parse_experiment(VALID).cells()] == ["gw-u1-3s"]
