"""Scenario files: TOML to a validated, fully resolved ``Scenario``; pure, no I/O but reading.

A scenario names the LLM backend, the worker's publish/stream/webhook modes, every link's
shape, an optional fault schedule, optional external components and fixed ports. The format
is documented in docs/scenarios.md. ``Scenario.to_dict()`` is what run.json records and the
analysis reads, so its key names are a contract: add keys, never rename them.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

from travelagent.link.faults import FAULT_NAMES
from travelagent.vocab import (
    JITTER_KINDS,
    PUBLISH_MODES,
    WEBHOOK_MODES,
    JitterKind,
    PublishMode,
    WebhookMode,
)

C = TypeVar("C", bound=str)

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "loadtests" / "scenarios"

LINK_NAMES: tuple[str, ...] = (
    "client_worker",
    "client_realtime",
    "realtime_worker",
    "worker_realtime",
    "worker_agents",
)
AGENT_PLACEMENTS: tuple[str, ...] = ("local", "remote")
HISTORY_KINDS: tuple[str, ...] = ("memory", "sqlite")
LLM_BACKENDS: tuple[str, ...] = ("simulated", "openai")
EXTERNAL_KEYS: tuple[str, ...] = ("worker_url", "realtime_url", "realtime_api_url")
PORT_KEYS: tuple[str, ...] = ("worker", "realtime", "agents", "control", *LINK_NAMES)


class ScenarioError(ValueError):
    """A scenario file is invalid; the message names the file, the key and the valid values."""


@dataclass(frozen=True)
class LLMConfig:
    backend: str = "simulated"
    profile: str = "note"
    base_url: str = ""
    model: str = ""


@dataclass(frozen=True)
class ScenarioWorkerConfig:
    """A scenario's ``[worker]`` table (the running worker's own settings are
    ``travelagent.worker.config.WorkerConfig``)."""

    publish: PublishMode = "http-pooled"
    stream: bool = True
    webhook_mode: WebhookMode = "after-publish"
    agents: str = "local"
    # Sockets one client address may hold (0: the worker's default, 1000). A load study whose
    # users all come from 127.0.0.1 raises it to step past 1000 users.
    max_connections_per_address: int = 0


@dataclass(frozen=True)
class ScenarioRealtimeConfig:
    """A scenario's ``[realtime]`` table: what survives a restart of the realtime service."""

    history: str = "memory"  # memory | sqlite (the channel history in a file of the run)
    webhook_outbox: bool = False  # webhooks owed kept in SQLite and delivered after a restart
    # Delays before each webhook retry, in seconds ("" = Standard Webhooks' schedule).
    webhook_retry_schedule_s: tuple[float, ...] = ()
    max_connections_per_address: int = 0  # as the worker's (0: the service's default, 1000)


@dataclass(frozen=True)
class LinkConfig:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: JitterKind = "normal"
    setup_rtts: float = 1.0
    bandwidth_kbps: float = 0.0
    # Only with zero delay and zero set-up: connect the two ends directly, with no proxy.
    direct: bool = False
    record: bool = False

    def shape(self) -> dict[str, Any]:
        """The keys ``travelagent.link.schedule.LinkShape`` takes."""
        return {
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "jitter": self.jitter,
            "setup_rtts": self.setup_rtts,
            "bandwidth_kbps": self.bandwidth_kbps,
        }


@dataclass(frozen=True)
class FaultConfig:
    at_s: float
    link: str
    fault: str
    duration_s: float | None = None
    slow_close_ms: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    seed: int = 1
    llm: LLMConfig = field(default_factory=LLMConfig)
    worker: ScenarioWorkerConfig = field(default_factory=ScenarioWorkerConfig)
    realtime: ScenarioRealtimeConfig = field(default_factory=ScenarioRealtimeConfig)
    links: dict[str, LinkConfig] = field(
        default_factory=lambda: {n: LinkConfig() for n in LINK_NAMES}
    )
    faults: tuple[FaultConfig, ...] = ()
    external: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    source: str = ""  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        """Fully resolved: every section, every link with every field and default."""
        out = asdict(self)
        out["realtime"]["webhook_retry_schedule_s"] = list(self.realtime.webhook_retry_schedule_s)
        out["faults"] = [{k: v for k, v in asdict(f).items() if v is not None} for f in self.faults]
        out["external"] = {k: self.external.get(k, "") for k in EXTERNAL_KEYS}
        out["ports"] = {k: self.ports.get(k, 0) for k in PORT_KEYS}
        return out

    def fault_schedule(self) -> list[dict[str, Any]]:
        return self.to_dict()["faults"]


# -- parsing --------------------------------------------------------------------------------


class _Reader:
    """Checks one table's keys and types, naming the file and the dotted key on error."""

    def __init__(self, source: str, where: str, table: Any) -> None:
        self.source = source
        self.where = where
        if not isinstance(table, dict):
            self.fail(where, "must be a table")
        self.table: dict[str, Any] = table

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ScenarioError(f"{self.source}: {key}: {problem}")

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def only(self, allowed: tuple[str, ...] | list[str]) -> None:
        for name in self.table:
            if name not in allowed:
                self.fail(self.key(name), f"unknown key; valid keys: {', '.join(allowed)}")

    def string(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.table.get(name, default)
        if not isinstance(value, str):
            self.fail(self.key(name), f"must be a string, got {value!r}")
        if choices is not None and value not in choices:
            self.fail(self.key(name), f"{value!r} is not valid; valid values: {', '.join(choices)}")
        return value

    def choice(self, name: str, default: C, choices: tuple[C, ...]) -> C:
        """A string that must be one of ``choices``, typed as the choices are."""
        return cast(C, self.string(name, default, choices))

    def boolean(self, name: str, default: bool) -> bool:
        value = self.table.get(name, default)
        if not isinstance(value, bool):
            self.fail(self.key(name), f"must be true or false, got {value!r}")
        return value

    def number(self, name: str, default: float | None, *, minimum: float = 0.0) -> float:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(self.key(name), f"must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(self.key(name), f"must be a finite number, got {value!r}")
        if value < minimum:
            self.fail(self.key(name), f"must be >= {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int) -> int:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self.key(name), f"must be an integer, got {value!r}")
        return value


def _cap(r: _Reader) -> int:
    cap = r.integer("max_connections_per_address", 0)
    if cap < 0:
        r.fail(r.key("max_connections_per_address"), f"must be >= 0 (0: the default), got {cap}")
    return cap


def _parse_link(source: str, name: str, table: Any) -> LinkConfig:
    r = _Reader(source, f"links.{name}", table)
    r.only(("delay_ms", "jitter_ms", "jitter", "setup_rtts", "bandwidth_kbps", "direct", "record"))
    link = LinkConfig(
        delay_ms=r.number("delay_ms", 0.0),
        jitter_ms=r.number("jitter_ms", 0.0),
        jitter=r.choice("jitter", "normal", JITTER_KINDS),
        setup_rtts=r.number("setup_rtts", 1.0),
        bandwidth_kbps=r.number("bandwidth_kbps", 0.0),
        direct=r.boolean("direct", False),
        record=r.boolean("record", False),
    )
    if link.direct and (link.delay_ms or link.setup_rtts or link.jitter_ms or link.bandwidth_kbps):
        r.fail(r.key("direct"), "a direct link must have zero delay, jitter, set-up and bandwidth")
    return link


def parse_scenario(data: dict[str, Any], *, source: str = "<scenario>") -> Scenario:
    top = _Reader(source, "", data)
    # "source" is accepted so that ``parse_scenario(s.to_dict())`` gives ``s`` back.
    top.only(
        (
            "name", "description", "seed", "llm", "worker", "realtime", "links", "faults",
            "external", "ports", "source",
        )
    )  # fmt: skip
    name = top.string("name", Path(source).stem if source != "<scenario>" else "")
    if not name:
        top.fail("name", "is required")

    llm_r = _Reader(source, "llm", data.get("llm", {}))
    llm_r.only(("backend", "profile", "base_url", "model"))
    llm = LLMConfig(
        backend=llm_r.string("backend", "simulated", LLM_BACKENDS),
        profile=llm_r.string("profile", "note"),
        base_url=llm_r.string("base_url", ""),
        model=llm_r.string("model", ""),
    )
    if llm.backend == "openai" and not llm.base_url:
        llm_r.fail("llm.base_url", "is required when backend = 'openai'")

    w = _Reader(source, "worker", data.get("worker", {}))
    w.only(("publish", "stream", "webhook_mode", "agents", "max_connections_per_address"))
    worker = ScenarioWorkerConfig(
        publish=w.choice("publish", "http-pooled", PUBLISH_MODES),
        stream=w.boolean("stream", True),
        webhook_mode=w.choice("webhook_mode", "after-publish", WEBHOOK_MODES),
        agents=w.string("agents", "local", AGENT_PLACEMENTS),
        max_connections_per_address=_cap(w),
    )

    rt = _Reader(source, "realtime", data.get("realtime", {}))
    rt.only(
        ("history", "webhook_outbox", "webhook_retry_schedule_s", "max_connections_per_address")
    )
    schedule = rt.table.get("webhook_retry_schedule_s", [])
    if not isinstance(schedule, list):
        rt.fail(rt.key("webhook_retry_schedule_s"), f"must be a list of seconds, got {schedule!r}")
    retry_s = tuple(
        _Reader(source, "realtime", {"webhook_retry_schedule_s": d}).number(
            "webhook_retry_schedule_s", None
        )
        for d in schedule
    )
    realtime = ScenarioRealtimeConfig(
        history=rt.string("history", "memory", HISTORY_KINDS),
        webhook_outbox=rt.boolean("webhook_outbox", False),
        webhook_retry_schedule_s=retry_s,
        max_connections_per_address=_cap(rt),
    )

    links_r = _Reader(source, "links", data.get("links", {}))
    links_r.only(LINK_NAMES)
    links = {n: _parse_link(source, n, links_r.table.get(n, {})) for n in LINK_NAMES}

    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list):
        top.fail("faults", "must be an array of tables ([[faults]])")
    faults = []
    for i, entry in enumerate(raw_faults):
        f = _Reader(source, f"faults[{i}]", entry)
        f.only(("at_s", "link", "fault", "duration_s", "slow_close_ms"))
        if "at_s" not in f.table:
            f.fail(f.key("at_s"), "is required")
        duration = f.table.get("duration_s")
        slow_close = f.table.get("slow_close_ms")
        faults.append(
            FaultConfig(
                at_s=f.number("at_s", None),
                link=f.string("link", "", LINK_NAMES),
                fault=f.string("fault", "", FAULT_NAMES),
                duration_s=None if duration is None else f.number("duration_s", None),
                slow_close_ms=None if slow_close is None else f.number("slow_close_ms", None),
            )
        )

    ext_r = _Reader(source, "external", data.get("external", {}))
    ext_r.only(EXTERNAL_KEYS)
    external = {k: ext_r.string(k, "") for k in EXTERNAL_KEYS if ext_r.table.get(k)}

    ports_r = _Reader(source, "ports", data.get("ports", {}))
    ports_r.only(PORT_KEYS)
    ports = {}
    for k in PORT_KEYS:
        if k in ports_r.table:
            value = ports_r.integer(k, 0)
            if not 0 <= value <= 65535:
                ports_r.fail(ports_r.key(k), f"must be 0-65535, got {value}")
            if value:  # 0 means "pick a free one", the same as leaving it out
                ports[k] = value

    return Scenario(
        name=name,
        description=top.string("description", ""),
        seed=top.integer("seed", 1),
        llm=llm,
        worker=worker,
        realtime=realtime,
        links=links,
        faults=tuple(sorted(faults, key=lambda f: f.at_s)),
        external=external,
        ports=ports,
        source=source if source != "<scenario>" else top.string("source", source),
    )


def resolve_path(path_or_name: str | Path) -> Path:
    """A path to a TOML file, or a preset name such as ``note`` (loadtests/scenarios/note.toml)."""
    path = Path(path_or_name)
    if path.suffix == ".toml" or path.exists():
        return path
    return SCENARIO_DIR / f"{path_or_name}.toml"


def list_presets() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(path_or_name: str | Path) -> Scenario:
    path = resolve_path(path_or_name)
    if not path.exists():
        presets = ", ".join(list_presets()) or "none"
        raise ScenarioError(f"{path}: no such scenario file; presets: {presets}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML: {err}") from err
    return parse_scenario(data, source=str(path))
