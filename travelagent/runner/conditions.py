"""Conditions: a grid of client link RTT x realtime-service RTT x LLM profile; pure.

An experiment file may name its axes in ``[grid]`` and measure some of its points with
``[[points]]``; every scenario of the file then runs at every listed point::

    [grid]
    client = [{ name = "metro", rtt_ms = 5, jitter_ms = 0.5 }, ...]     # client <-> edge
    service = [{ name = "region", rtt_ms = 2, jitter_ms = 0.1 }, ...]   # worker <-> realtime
    llm = ["instant", "gpt-4o-mini-like"]

    [[points]]
    client = "metro"
    service = "region"
    llm = "instant"
    held_out = true          # measured only to check the model, never fitted on

A point sets both client links (``client_worker``, ``client_realtime``) and both service links
(``realtime_worker``, ``worker_realtime``) to half the RTT one way, with the axis value's jitter,
and the LLM profile. The grid points nobody measured are predicted by the model
(``analysis.latency_model``) in the claims map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from travelagent.vocab import JITTER_KINDS

CLIENT_LINKS = ("client_worker", "client_realtime")
SERVICE_LINKS = ("realtime_worker", "worker_realtime")


class ConditionsError(ValueError):
    """A grid or point is invalid; the message names the key."""


@dataclass(frozen=True)
class Level:
    """One value of a link axis: a round trip and its jitter."""

    name: str
    rtt_ms: float
    jitter_ms: float = 0.0
    jitter: str = "normal"

    def link_overrides(self, links: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for link in links:
            out[f"links.{link}.delay_ms"] = self.rtt_ms / 2
            out[f"links.{link}.jitter_ms"] = self.jitter_ms
            out[f"links.{link}.jitter"] = self.jitter
        return out


@dataclass(frozen=True)
class Point:
    client: Level
    service: Level
    llm: str
    held_out: bool = False

    @property
    def name(self) -> str:
        return f"{self.client.name}.{self.service.name}.{self.llm}"

    def overrides(self) -> dict[str, Any]:
        return {
            **self.client.link_overrides(CLIENT_LINKS),
            **self.service.link_overrides(SERVICE_LINKS),
            "llm.profile": self.llm,
        }

    def key(self) -> dict[str, Any]:
        return {"client": self.client.name, "client_rtt_ms": self.client.rtt_ms,
                "service": self.service.name, "service_rtt_ms": self.service.rtt_ms,
                "llm": self.llm}  # fmt: skip


@dataclass(frozen=True)
class Grid:
    client: tuple[Level, ...]
    service: tuple[Level, ...]
    llm: tuple[str, ...]

    def points(self) -> list[Point]:
        """Every point of the grid (client x service x LLM)."""
        return [Point(c, s, m) for m in self.llm for s in self.service for c in self.client]

    def to_dict(self) -> dict[str, Any]:
        def lv(levels: tuple[Level, ...]) -> list[dict[str, Any]]:
            return [{"name": x.name, "rtt_ms": x.rtt_ms, "jitter_ms": x.jitter_ms,
                     "jitter": x.jitter} for x in levels]  # fmt: skip

        return {"client": lv(self.client), "service": lv(self.service), "llm": list(self.llm)}


def _finite(src: str, key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(float(value))
        or value < 0
    ):
        raise ConditionsError(f"{src}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def _level(src: str, key: str, table: Any) -> Level:
    if not isinstance(table, dict):
        raise ConditionsError(f"{src}: {key} must be a table {{ name, rtt_ms, jitter_ms, jitter }}")
    extra = set(table) - {"name", "rtt_ms", "jitter_ms", "jitter"}
    if extra:
        raise ConditionsError(f"{src}: {key}.{sorted(extra)[0]} is not a level key")
    name = table.get("name")
    if not isinstance(name, str) or not name or not name.replace("-", "").isalnum():
        raise ConditionsError(f"{src}: {key}.name must be letters, digits or '-', got {name!r}")
    jitter = table.get("jitter", "normal")
    if jitter not in JITTER_KINDS:
        raise ConditionsError(
            f"{src}: {key}.jitter must be one of {', '.join(JITTER_KINDS)}, got {jitter!r}"
        )
    return Level(name, _finite(src, f"{key}.rtt_ms", table.get("rtt_ms")),
                 _finite(src, f"{key}.jitter_ms", table.get("jitter_ms", 0.0)), jitter)  # fmt: skip


def parse_grid(src: str, table: Any) -> Grid:
    from travelagent.agent.llm.profiles import PROFILES

    if not isinstance(table, dict):
        raise ConditionsError(f"{src}: grid must be a table with client, service and llm")
    extra = set(table) - {"client", "service", "llm"}
    if extra:
        raise ConditionsError(f"{src}: grid.{sorted(extra)[0]} is not a grid axis")
    axes: dict[str, tuple[Level, ...]] = {}
    for axis in ("client", "service"):
        raw = table.get(axis)
        if not isinstance(raw, list) or not raw:
            raise ConditionsError(f"{src}: grid.{axis} must be a non-empty list of levels")
        levels = tuple(_level(src, f"grid.{axis}[{i}]", x) for i, x in enumerate(raw))
        if len({x.name for x in levels}) != len(levels):
            raise ConditionsError(f"{src}: grid.{axis} names must be unique")
        axes[axis] = levels
    llm = table.get("llm")
    if not isinstance(llm, list) or not llm or not all(isinstance(x, str) for x in llm):
        raise ConditionsError(f"{src}: grid.llm must be a non-empty list of profile names")
    for name in llm:
        if name not in PROFILES:
            raise ConditionsError(
                f"{src}: grid.llm: unknown LLM profile {name!r}; valid: {', '.join(PROFILES)}"
            )
    return Grid(axes["client"], axes["service"], tuple(llm))


def parse_points(src: str, grid: Grid, raw: Any) -> list[Point]:
    if not isinstance(raw, list) or not raw:
        raise ConditionsError(f"{src}: points must be a non-empty array of tables ([[points]])")
    clients = {x.name: x for x in grid.client}
    services = {x.name: x for x in grid.service}
    out: list[Point] = []
    for i, p in enumerate(raw):
        key = f"points[{i}]"
        if not isinstance(p, dict):
            raise ConditionsError(f"{src}: {key} must be a table")
        extra = set(p) - {"client", "service", "llm", "held_out"}
        if extra:
            raise ConditionsError(
                f"{src}: {key}.{sorted(extra)[0]} is not a point key (client, service, llm, "
                "held_out)"
            )
        c, s, m = p.get("client"), p.get("service"), p.get("llm")
        if c not in clients:
            raise ConditionsError(f"{src}: {key}.client {c!r} is not in grid.client")
        if s not in services:
            raise ConditionsError(f"{src}: {key}.service {s!r} is not in grid.service")
        if m not in grid.llm:
            raise ConditionsError(f"{src}: {key}.llm {m!r} is not in grid.llm")
        held = p.get("held_out", False)
        if not isinstance(held, bool):
            raise ConditionsError(f"{src}: {key}.held_out must be true or false")
        out.append(Point(clients[str(c)], services[str(s)], str(m), held))
    if len({x.name for x in out}) != len(out):
        raise ConditionsError(f"{src}: points must be distinct")
    return out


def point_links(point: Point, base: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The four links' shapes at a point (on top of ``base``, e.g. a preset's set-up rtts)."""
    links = {k: dict(v) for k, v in (base or {}).items()}
    for names, level in ((CLIENT_LINKS, point.client), (SERVICE_LINKS, point.service)):
        for name in names:
            link = links.setdefault(name, {"setup_rtts": 2})
            link.update(delay_ms=level.rtt_ms / 2, jitter_ms=level.jitter_ms, jitter=level.jitter)
    return links
