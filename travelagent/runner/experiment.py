"""Experiment files: a matrix of scenarios x load shapes x durations (x repetitions); pure.

    name = "default"
    durations_s = [5]
    repetitions = 1

    [load]                      # Locust settings shared by every cell
    pace = "closed"             # closed | open
    think_ms = 0
    rate_per_user = 1.0         # open loop, messages/s per user
    timeout_s = 10

    [[scenarios]]
    name = "rt-pooled"          # cell names start with it
    preset = "note"             # a preset name or a path to a scenario file
    arch = "realtime"           # gateway | realtime | hybrid
    overrides = { "worker.publish" = "http-pooled", "worker.stream" = true }

    [[shapes]]
    name = "u4"
    kind = "constant"           # see travelagent.runner.shapes
    users = 4

Every scenario is resolved (preset read, overrides applied, checked by the launcher's parser) when
the file is parsed, so a bad key fails before anything starts.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from travelagent.runner.shapes import Shape, ShapeError, parse_shape

ARCHES = ("gateway", "realtime", "hybrid")
EXPERIMENT_DIR = Path(__file__).resolve().parents[2] / "loadtests" / "experiments"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ExperimentError(ValueError):
    """An experiment file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Load:
    pace: str = "closed"
    think_ms: float = 0.0
    rate_per_user: float = 1.0
    arrivals: str = "uniform"
    timeout_s: float = 10.0
    message_mix: str = "default"
    spawn_rate: float = 0.0  # users/s; 0 = all at once
    processes: int = 1
    stop_timeout_s: float = 5.0  # let in-flight messages finish when a cell ends
    start_spread_ms: float = 0.0  # closed loop: first sends spread over this (0 = at once)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ScenarioEntry:
    name: str
    preset: str
    arch: str
    overrides: dict[str, Any] = field(default_factory=dict)
    scenario: Any = None  # the launcher's resolved Scenario
    point: str = ""  # the grid point it runs at (runner.conditions), if any
    held_out: bool = False  # kept out of the model's fit (analysis.latency_model)

    @property
    def publish(self) -> str:
        return "" if self.arch != "realtime" else str(self.scenario.worker.publish)

    @property
    def streaming(self) -> bool:
        return bool(self.scenario.worker.stream)


@dataclass(frozen=True)
class Cell:
    name: str
    entry: ScenarioEntry
    shape_name: str
    shape: Shape
    duration_s: float
    repetition: int
    load: Load


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    source: str
    scenarios: tuple[ScenarioEntry, ...]
    shapes: tuple[tuple[str, Shape], ...]
    durations_s: tuple[float, ...]
    repetitions: int
    load: Load
    grid: dict[str, Any] = field(default_factory=dict)  # runner.conditions.Grid.to_dict()
    # A cell the self-check flagged is run again up to ``retry_flagged`` times (its flagged
    # attempts kept under attempts/); no re-run starts once re-runs took ``retry_budget_s`` in
    # all (0: no limit).
    retry_flagged: int = 0
    retry_budget_s: float = 0.0

    def cells(self) -> list[Cell]:
        out = []
        for rep in range(1, self.repetitions + 1):
            for entry in self.scenarios:
                for shape_name, shape in self.shapes:
                    for dur in self.durations_s:
                        name = f"{entry.name}-{shape_name}-{dur:g}s"
                        if self.repetitions > 1:
                            name += f"-r{rep}"
                        sized = parse_shape({**shape.to_dict(), "duration_s": dur})
                        out.append(Cell(name, entry, shape_name, sized, dur, rep, self.load))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment, for run.json."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "durations_s": list(self.durations_s),
            "repetitions": self.repetitions,
            "retry_flagged": self.retry_flagged,
            "retry_budget_s": self.retry_budget_s,
            "load": self.load.to_dict(),
            "scenarios": [_entry_dict(e) for e in self.scenarios],
            "shapes": [{"name": n, **s.to_dict()} for n, s in self.shapes],
            **({"grid": self.grid} if self.grid else {}),
        }


def _entry_dict(e: ScenarioEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"name": e.name, "preset": e.preset, "arch": e.arch}
    out["overrides"] = e.overrides
    if e.point:
        out.update(point=e.point, held_out=e.held_out)
    return out


def _fail(source: str, key: str, problem: str) -> ExperimentError:
    return ExperimentError(f"{source}: {key} {problem}")


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a scenario's TOML data with dotted keys (``worker.publish``) set."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def resolve_scenario(preset: str, overrides: dict[str, Any], *, base: Path | None = None) -> Any:
    """The launcher's Scenario for a preset name or file, with overrides applied."""
    from travelagent.topology.scenario import ScenarioError, parse_scenario, resolve_path

    path = Path(preset)
    try:
        if base is not None and not path.is_absolute() and (base / path).exists():
            path = base / path
        else:
            path = resolve_path(preset)
    except (OSError, ValueError) as err:  # a name too long for the file system, a NUL in it
        raise ExperimentError(f"scenario {preset!r}: not a preset or file: {err}") from None
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ExperimentError(f"scenario {preset!r}: no preset or file {path}") from None
    except (OSError, ValueError) as err:  # a directory, a NUL in the name, not TOML, not UTF-8
        raise ExperimentError(f"scenario {preset!r}: cannot read {path}: {err}") from None
    try:
        return parse_scenario(apply_overrides(data, overrides), source=str(path))
    except ScenarioError as err:
        raise ExperimentError(f"scenario {preset!r} with overrides {overrides}: {err}") from None


def _number(src: str, key: str, value: Any, *, minimum: float = 0.0) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))  # TOML spells nan and inf
        or value < minimum
    ):
        raise _fail(src, key, f"must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def parse_load(src: str, table: Any) -> Load:
    if not isinstance(table, dict):
        raise _fail(src, "load", "must be a table")
    known = {f.name for f in fields(Load)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise _fail(
                src, f"load.{key}", f"is not a load setting; known: {', '.join(sorted(known))}"
            )
        if key in ("pace", "arrivals", "message_mix"):
            if not isinstance(value, str):
                raise _fail(src, f"load.{key}", "must be a string")
            values[key] = value
        elif key == "processes":
            count = _number(src, f"load.{key}", value, minimum=1)
            if not count.is_integer():
                raise _fail(src, f"load.{key}", f"must be a whole number, got {value!r}")
            values[key] = int(count)
        else:
            values[key] = _number(src, f"load.{key}", value)
    load = Load(**values)
    if load.pace not in ("closed", "open"):
        raise _fail(src, "load.pace", f"must be 'closed' or 'open', got {load.pace!r}")
    if load.arrivals not in ("uniform", "poisson"):
        raise _fail(src, "load.arrivals", f"must be 'uniform' or 'poisson', got {load.arrivals!r}")
    if load.pace == "open" and load.rate_per_user <= 0:
        raise _fail(src, "load.rate_per_user", "must be > 0 in an open loop")
    if load.timeout_s <= 0:
        raise _fail(src, "load.timeout_s", "must be > 0")
    return load


def parse_experiment(data: dict[str, Any], *, source: str = "<experiment>") -> Experiment:
    src = source
    allowed = {"name", "kind", "description", "durations_s", "repetitions", "load", "scenarios",
               "shapes", "grid", "points", "retry_flagged", "retry_budget_s"}  # fmt: skip
    if data.get("kind", "experiment") != "experiment":
        raise _fail(src, "kind", f"must be 'experiment' here (a chaos experiment is read by "
                    f"runner/chaos.py), got {data.get('kind')!r}")  # fmt: skip
    for key in data:
        if key not in allowed:
            raise _fail(src, key, f"is not an experiment key; known: {', '.join(sorted(allowed))}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(src, "name", "must be 1-64 letters, digits, '-', '_' or '.'")
    durations = data.get("durations_s")
    if not isinstance(durations, list) or not durations:
        raise _fail(src, "durations_s", "must be a non-empty list of seconds")
    durs = tuple(_number(src, "durations_s", d, minimum=1) for d in durations)
    reps = data.get("repetitions", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise _fail(src, "repetitions", f"must be a whole number >= 1, got {reps!r}")
    retries = data.get("retry_flagged", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 5:
        raise _fail(src, "retry_flagged", f"must be a whole number from 0 to 5, got {retries!r}")
    budget = _number(src, "retry_budget_s", data.get("retry_budget_s", 0), minimum=0)
    load = parse_load(src, data.get("load", {}))
    base = Path(source).parent if source != "<experiment>" else None

    raw_scenarios = data.get("scenarios")
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise _fail(src, "scenarios", "must be a non-empty array of tables ([[scenarios]])")
    entries: list[ScenarioEntry] = []
    for i, s in enumerate(raw_scenarios):
        key = f"scenarios[{i}]"
        if not isinstance(s, dict):
            raise _fail(src, key, "must be a table")
        extra = set(s) - {"name", "preset", "arch", "overrides"}
        if extra:
            raise _fail(
                src,
                f"{key}.{sorted(extra)[0]}",
                "is not a scenario key (name, preset, arch, overrides)",
            )
        preset = s.get("preset")
        if not isinstance(preset, str) or not preset:
            raise _fail(src, f"{key}.preset", "is required: a preset name or a scenario file")
        arch = s.get("arch")
        if arch not in ARCHES:
            raise _fail(src, f"{key}.arch", f"must be one of {', '.join(ARCHES)}, got {arch!r}")
        overrides = s.get("overrides", {})
        if not isinstance(overrides, dict):
            raise _fail(src, f"{key}.overrides", "must be a table of dotted keys")
        sname = s.get("name", f"{arch}-{Path(preset).stem}")
        if not isinstance(sname, str) or not _NAME.match(sname):
            raise _fail(src, f"{key}.name", "must be 1-64 letters, digits, '-', '_' or '.'")
        scenario = resolve_scenario(preset, overrides, base=base)
        entries.append(ScenarioEntry(sname, preset, arch, dict(overrides), scenario))
    if len({e.name for e in entries}) != len(entries):
        raise _fail(src, "scenarios", "names must be unique")
    grid: dict[str, Any] = {}
    if "grid" in data or "points" in data:
        entries, grid = _at_points(src, data, entries, base)

    raw_shapes = data.get("shapes")
    if not isinstance(raw_shapes, list) or not raw_shapes:
        raise _fail(src, "shapes", "must be a non-empty array of tables ([[shapes]])")
    shapes: list[tuple[str, Shape]] = []
    for i, sh in enumerate(raw_shapes):
        key = f"shapes[{i}]"
        if not isinstance(sh, dict):
            raise _fail(src, key, "must be a table")
        sname = sh.get("name", f"s{i + 1}")
        if not isinstance(sname, str) or not _NAME.match(sname):
            raise _fail(src, f"{key}.name", "must be 1-64 letters, digits, '-', '_' or '.'")
        try:
            shapes.append((sname, parse_shape(sh)))
        except ShapeError as err:
            raise _fail(src, key, str(err)) from None
    if len({n for n, _ in shapes}) != len(shapes):
        raise _fail(src, "shapes", "names must be unique")

    return Experiment(
        name=name,
        description=str(data.get("description", "")),
        source=source,
        scenarios=tuple(entries),
        shapes=tuple(shapes),
        durations_s=durs,
        repetitions=reps,
        load=load,
        grid=grid,
        retry_flagged=retries,
        retry_budget_s=budget,
    )


def _at_points(
    src: str, data: dict[str, Any], entries: list[ScenarioEntry], base: Path | None
) -> tuple[list[ScenarioEntry], dict[str, Any]]:
    """Every scenario at every measured grid point (``[grid]`` + ``[[points]]``)."""
    from travelagent.runner.conditions import ConditionsError, parse_grid, parse_points

    try:
        grid = parse_grid(src, data.get("grid"))
        points = parse_points(src, grid, data.get("points"))
    except ConditionsError as err:
        raise ExperimentError(str(err)) from None
    out = []
    for p in points:
        for e in entries:
            overrides = {**e.overrides, **p.overrides()}
            scenario = resolve_scenario(e.preset, overrides, base=base)
            name = f"{p.name}.{e.name}"
            out.append(ScenarioEntry(name, e.preset, e.arch, overrides, scenario, p.name,
                                     p.held_out))  # fmt: skip
    return out, grid.to_dict()


def experiment_path(path_or_name: str | Path) -> Path:
    """A file path, or a name under loadtests/experiments/ (``default`` -> default.toml)."""
    path = Path(path_or_name)
    if path.suffix == ".toml" or path.exists():
        return path
    return EXPERIMENT_DIR / f"{path_or_name}.toml"


def load_experiment(path_or_name: str | Path) -> Experiment:
    path = experiment_path(path_or_name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in EXPERIMENT_DIR.glob("*.toml"))) or "none"
        raise ExperimentError(f"{path}: no such experiment file; known: {known}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ExperimentError(f"{path}: not valid TOML: {err}") from None
    return parse_experiment(data, source=str(path))
