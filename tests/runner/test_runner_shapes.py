from __future__ import annotations

import pytest

from travelagent.runner.shapes import ShapeError, parse_shape


def test_constant_holds_users_until_duration_then_ends() -> None:
    s = parse_shape({"kind": "constant", "users": 4, "duration_s": 10})
    assert s.tick(0) == (4, 4.0)
    assert s.tick(9.9) == (4, 4.0)
    assert s.tick(10) is None


def test_steps_add_step_users_every_step_up_to_users() -> None:
    s = parse_shape({"kind": "steps", "users": 5, "step_users": 2, "step_s": 3})
    assert [s.tick(t)[0] for t in (0, 2.9, 3, 6, 9, 100)] == [2, 2, 4, 5, 5, 5]  # type: ignore[index]


def test_ramp_spawns_at_users_over_ramp_time() -> None:
    s = parse_shape({"kind": "ramp", "users": 10, "duration_s": 20})
    assert s.tick(0) == (10, 0.5)


def test_spike_rises_for_its_window_only() -> None:
    s = parse_shape({"kind": "spike", "users": 2, "spike_users": 10, "spike_at_s": 5, "spike_s": 2})
    assert [s.tick(t)[0] for t in (0, 5, 6.9, 7)] == [2, 10, 10, 2]  # type: ignore[index]
    assert s.peak_users == 10


def test_constant_rate_is_open_loop_users_at_rate_per_user() -> None:
    s = parse_shape({"kind": "constant-rate", "target_rps": 25, "rate_per_user": 2})
    assert s.open_loop and s.peak_users == 13
    assert s.tick(1) == (13, 13.0)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"kind": "square"}, "kind must be one of"),
        ({"users": "four"}, "must be a number"),
        ({"users": 2.5}, "whole number"),
        ({"users": -1}, "must not be negative"),
        ({"usres": 3}, "unknown shape field 'usres'"),
        ({"kind": "steps", "users": 4, "step_s": 0}, "step_s > 0"),
        ({"kind": "spike", "users": 2}, "spike_users"),
        ({"kind": "constant-rate"}, "target_rps"),
        ({"kind": "constant", "users": 0}, "users >= 1"),
        ({"users": True}, "must be a number"),
    ],
)
def test_bad_shapes_are_refused_with_the_field_named(fields: dict, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        parse_shape(fields)


def test_summary_keeps_only_the_fields_of_its_kind() -> None:
    s = parse_shape({"kind": "steps", "users": 6, "step_users": 2, "step_s": 3, "duration_s": 9})
    assert s.summary() == {
        "kind": "steps", "users": 6, "spawn_rate": 0.0, "step_users": 2, "step_s": 3.0,
        "duration_s": 9,
    }  # fmt: skip
    rate = parse_shape({"kind": "constant-rate", "target_rps": 10, "rate_per_user": 2})
    assert rate.summary()["users"] == 5 and "step_s" not in rate.summary()
