"""Load shapes as pure functions of elapsed time; the Locust ``LoadTestShape`` wraps them.

A shape says, at ``t_s`` seconds into the test, how many users should run and how fast to spawn
them, or ``None`` to end the test:

- ``constant``: ``users`` for ``duration_s``.
- ``steps``: start at ``step_users`` and add ``step_users`` every ``step_s`` up to ``users``.
- ``ramp``: grow linearly from 0 to ``users`` over ``ramp_s`` (default: the whole duration).
- ``spike``: ``users`` as a baseline, ``spike_users`` from ``spike_at_s`` for ``spike_s``.
- ``constant-rate``: a constant arrival rate: ``target_rps`` messages per second in total, as
  open-loop users sending ``rate_per_user`` each (``ceil(target_rps / rate_per_user)`` users).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

KINDS = ("constant", "steps", "ramp", "spike", "constant-rate")


class ShapeError(ValueError):
    """A shape definition is invalid; the message says which field and why."""


@dataclass(frozen=True)
class Shape:
    kind: str = "constant"
    users: int = 1
    spawn_rate: float = 0.0  # users per second; 0 = all at once
    duration_s: float = 0.0  # 0 = until stopped
    step_users: int = 1
    step_s: float = 5.0
    ramp_s: float = 0.0
    spike_users: int = 0
    spike_at_s: float = 0.0
    spike_s: float = 0.0
    target_rps: float = 0.0
    rate_per_user: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> dict[str, Any]:
        """The fields that matter for this kind of shape (for run.json and readers of it)."""
        keys = {
            "constant": ("users", "spawn_rate"),
            "steps": ("users", "spawn_rate", "step_users", "step_s"),
            "ramp": ("users", "ramp_s"),
            "spike": ("users", "spawn_rate", "spike_users", "spike_at_s", "spike_s"),
            "constant-rate": ("target_rps", "rate_per_user"),
        }[self.kind]
        out: dict[str, Any] = {"kind": self.kind, **{k: getattr(self, k) for k in keys}}
        out["users"] = self.peak_users
        out["duration_s"] = self.duration_s
        return out

    @property
    def open_loop(self) -> bool:
        """A constant arrival rate only exists if users send on a schedule."""
        return self.kind == "constant-rate"

    @property
    def peak_users(self) -> int:
        if self.kind == "spike":
            return max(self.users, self.spike_users)
        if self.kind == "constant-rate":
            return max(1, math.ceil(self.target_rps / self.rate_per_user))
        return self.users

    def spawn(self, users: int) -> float:
        return self.spawn_rate if self.spawn_rate > 0 else float(max(users, 1))

    def tick(self, t_s: float) -> tuple[int, float] | None:
        if self.duration_s and t_s >= self.duration_s:
            return None
        if self.kind == "constant":
            return self.users, self.spawn(self.users)
        if self.kind == "steps":
            n = min(self.users, self.step_users * (1 + int(t_s // self.step_s)))
            return n, self.spawn(self.step_users)
        if self.kind == "ramp":
            ramp_s = self.ramp_s or self.duration_s or 60.0
            return self.users, max(self.users / ramp_s, 0.01)
        if self.kind == "spike":
            in_spike = self.spike_at_s <= t_s < self.spike_at_s + self.spike_s
            n = self.spike_users if in_spike else self.users
            return n, self.spawn(max(self.spike_users, self.users))
        users = self.peak_users
        return users, self.spawn(users)


def parse_shape(obj: dict[str, Any]) -> Shape:
    """Build a Shape from a mapping (TOML table or JSON), checking names, types and ranges."""
    if not isinstance(obj, dict):
        raise ShapeError("a shape must be a table of fields")
    known = {f.name: f for f in fields(Shape)}
    values: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "name":
            continue
        if key not in known:
            raise ShapeError(f"unknown shape field {key!r}; known: {', '.join(sorted(known))}")
        default = getattr(Shape(), key)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ShapeError(f"shape field {key!r} must be a string")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ShapeError(f"shape field {key!r} must be a number, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ShapeError(f"shape field {key!r} must be a finite number, got {value!r}")
        elif isinstance(default, int) and not float(value).is_integer():
            raise ShapeError(f"shape field {key!r} must be a whole number, got {value!r}")
        elif value < 0:
            raise ShapeError(f"shape field {key!r} must not be negative, got {value!r}")
        values[key] = int(value) if isinstance(default, int) else value
    shape = Shape(**values)
    if shape.kind not in KINDS:
        raise ShapeError(f"shape kind must be one of {', '.join(KINDS)}; got {shape.kind!r}")
    if shape.kind == "steps" and (shape.step_users < 1 or shape.step_s <= 0):
        raise ShapeError("a steps shape needs step_users >= 1 and step_s > 0")
    if shape.kind == "spike" and (shape.spike_users < 1 or shape.spike_s <= 0):
        raise ShapeError("a spike shape needs spike_users >= 1 and spike_s > 0")
    if shape.kind == "constant-rate" and (shape.target_rps <= 0 or shape.rate_per_user <= 0):
        raise ShapeError("a constant-rate shape needs target_rps > 0 and rate_per_user > 0")
    if shape.kind != "constant-rate" and shape.users < 1:
        raise ShapeError("a shape needs users >= 1")
    return shape
