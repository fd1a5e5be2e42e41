"""From raw trial results to figures, ratios and verdicts against the issue's targets; pure.

Input is what the sections return (plain dicts, as written to ``bench.json``); output is a list
of ``Row``s, each one figure (median, min, max over the rounds), with its target when the issue
sets one and whether the median meets it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from travelagent.bench.stats import Figure, pairwise_overhead, pairwise_ratio

FLOOR = "floor-websockets"  # the floor
FLOORS = ("floor-websockets", "floor-aiohttp")
GATEWAY = "gateway"
RT_PERSISTENT = "realtime-ws-persistent-nostream"
PEER_CASE = "peer-wrangler"  # the gateway on Cloudflare's runtime (wrangler dev), optional
STAMPS_ON, STAMPS_OFF = "stamping/gateway", "stamping/gateway-nostamps"  # the paired trials


@dataclass(frozen=True)
class Target:
    text: str  # as the issue puts it, e.g. "≤ 3× floor"
    check: Callable[[float], bool]

    def verdict(self, value: float) -> str:
        if math.isnan(value):
            return "not measured"
        return "met" if self.check(value) else "missed"


def at_most(limit: float, text: str) -> Target:
    return Target(text, lambda v: v <= limit)


def at_least(limit: float, text: str) -> Target:
    return Target(text, lambda v: v >= limit)


@dataclass(frozen=True)
class Row:
    """One figure: ``subject`` is what was measured (a case at a client count), ``metric`` which
    quantity of it; the printed table has a line per subject and a column per metric."""

    section: str
    subject: str
    metric: str
    unit: str
    figure: Figure
    target: Target | None = None

    @property
    def label(self) -> str:
        return f"{self.subject} {self.metric}"

    @property
    def verdict(self) -> str:
        return self.target.verdict(self.figure.median) if self.target else ""

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "subject": self.subject, "metric": self.metric,
                "unit": self.unit,
                **self.figure.to_dict(), "target": self.target.text if self.target else None,
                "verdict": self.verdict or None}  # fmt: skip


def _by_round(trials: list[dict[str, Any]], key: str) -> dict[tuple[str, int], list[float]]:
    """(case, clients) -> ``key`` per round, in round order."""
    out: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for t in trials:
        out[(t["case"], t["clients"])][t["round"]] = float(t[key])
    return {k: [v[r] for r in sorted(v)] for k, v in out.items()}


def _paired(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    n = min(len(a), len(b))
    return a[:n], b[:n]


def roundtrip_rows(trials: list[dict[str, Any]]) -> list[Row]:
    p50, p99, rate = (_by_round(trials, k) for k in ("p50_ms", "p99_ms", "rate_per_s"))
    rows: list[Row] = []
    for case, clients in p50:  # in first-seen order: the schedule's
        key = (case, clients)
        label = f"{case} @{clients}"
        p50_target = rate_target = None
        if case == GATEWAY and clients == 20:
            p50_target = at_most(15.0, "≤ 15 ms")
            rate_target = at_least(1500.0, "≥ 1,500 msg/s")
        if case == RT_PERSISTENT and clients == 20:
            rate_target = at_least(1000.0, "≥ 1,000 msg/s")
        rows += [
            Row("round trip", label, "p50", "ms", Figure.of(p50[key]), p50_target),
            Row("round trip", label, "p99", "ms", Figure.of(p99[key])),
            Row("round trip", label, "rate", "msg/s", Figure.of(rate[key]), rate_target),
        ]
        for floor in FLOORS:
            if case not in FLOORS and (floor, clients) in p50:
                target = (
                    at_most(3.0, "≤ 3×")
                    if case == GATEWAY and clients == 1 and floor == FLOOR
                    else None
                )
                ratio = pairwise_ratio(*_paired(p50[key], p50[(floor, clients)]))
                rows.append(Row("round trip", label, f"p50 / {floor}", "×", ratio, target))
        if (case.startswith("realtime") or case == PEER_CASE) and (GATEWAY, clients) in p50:
            target = at_most(2.0, "≤ 2×") if case == RT_PERSISTENT and clients == 1 else None
            ratio = pairwise_ratio(*_paired(p50[key], p50[(GATEWAY, clients)]))
            rows.append(Row("round trip", label, "p50 / gateway", "×", ratio, target))
    return rows


def stamping_rows(trials: list[dict[str, Any]]) -> list[Row]:
    """From the paired trials: what the client's trace costs the gateway's p50 and rate."""
    p50, rate = _by_round(trials, "p50_ms"), _by_round(trials, "rate_per_s")
    rows = []
    for (case, clients), untraced in p50.items():
        if case != STAMPS_OFF or (STAMPS_ON, clients) not in p50:
            continue
        traced = p50[(STAMPS_ON, clients)]
        cost = pairwise_overhead(*_paired(traced, untraced))
        rows.append(Row("stamping", f"gateway @{clients}", "p50 cost", "%", _pct(cost),
                        at_most(2.0, "≤ 2 %")))  # fmt: skip
        # Throughput lost: the untraced rate over the traced rate, minus one.
        lost = pairwise_overhead(*_paired(rate[(case, clients)], rate[(STAMPS_ON, clients)]))
        rows.append(Row("stamping", f"gateway @{clients}", "rate cost", "%", _pct(lost),
                        at_most(2.0, "≤ 2 %")))  # fmt: skip
    return rows


def _pct(f: Figure) -> Figure:
    return Figure.of(v * 100 for v in f.values)


def link_rows(links: list[dict[str, Any]]) -> list[Row]:
    zero = [m for m in links if m["delay_ms"] == 0]
    ten = [m for m in links if m["delay_ms"] == 10]
    rows = []
    if zero:
        added = Figure.of(m["p50"] - m["direct_p50"] for m in zero)
        rows.append(Row("links", "0 ms", "added p50 (one direction)", "ms", added,
                        at_most(0.1, "≤ 0.1 ms")))  # fmt: skip
    if ten:
        rows += [
            Row("links", "10 ms @1,000/s", "measured p50", "ms", Figure.of(m["p50"] for m in ten)),
            Row("links", "10 ms @1,000/s", "p50 error", "ms",
                Figure.of(m["p50"] - m["delay_ms"] for m in ten), at_most(0.1, "≤ 0.1 ms")),
            Row("links", "10 ms @1,000/s", "p99 error", "ms",
                Figure.of(m["p99"] - m["delay_ms"] for m in ten), at_most(0.5, "≤ 0.5 ms")),
        ]  # fmt: skip
    return rows


def memory_rows(memory: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for server in ("gateway", "realtime"):
        ms = [m for m in memory if m["server"] == server]
        if ms:
            n = max(m["connections"] for m in ms)
            rows.append(Row("memory", f"{server} @{n:,} idle", "per connection", "KiB",
                            Figure.of(m["per_connection_kib"] for m in ms),
                            at_most(16.0, "≤ 16 KiB")))  # fmt: skip
    return rows


def loadgen_rows(loadgen: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for target in dict.fromkeys(m["target"] for m in loadgen):
        for generator in ("locust", "asyncio"):
            ms = [m for m in loadgen if m["target"] == target and m["generator"] == generator]
            if not ms:
                continue
            goal = (
                at_least(5000.0, "≥ 5,000 msg/s")
                if generator == "locust" and target == "standin"
                else None
            )
            label = f"{generator} -> {target} ({ms[0]['users']} users)"
            rows.append(Row("load generator", label, "rate", "msg/s",
                            Figure.of(m["rate_per_s"] for m in ms), goal))  # fmt: skip
    return rows


def build_rows(results: dict[str, Any]) -> list[Row]:
    trials = results.get("roundtrips", [])
    return [
        *roundtrip_rows([t for t in trials if not t["case"].startswith("stamping/")]),
        *stamping_rows([t for t in trials if t["case"].startswith("stamping/")]),
        *link_rows(results.get("links", [])),
        *memory_rows(results.get("memory", [])),
        *loadgen_rows(results.get("loadgen", [])),
    ]
