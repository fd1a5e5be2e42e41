"""The claims map: each claim's verdict at every point of a conditions grid, measured where a
point was measured and predicted by the latency model elsewhere, and the conditions where a
verdict changes, in words.

- **Measured points**: the claims of ``analysis.claims`` on the point's cells alone (their own
  intervals: repetitions, then messages), plus the map-only claim below from the cells' medians
  with a bootstrap interval.
- **Predicted points**: each path's p50/p90 from ``analysis.latency_model``; an effect's
  interval widens each p50 by the worst error the model made on held-out cells of that path
  (``Fit.bands``), so a predicted verdict is only as confident as the model has shown itself
  to be.
- **Crossovers**: along one axis (the worker-to-realtime RTT for the comparisons, the client
  RTT for the ranges), with the others fixed, the model is evaluated on a fine axis and the
  points where the effect crosses its line are found by linear interpolation
  (``crossings``); the sentences name the LLM profile by its measured first-token time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.analysis import verdicts as V
from travelagent.analysis.latency_model import Fit, Prediction, predict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from travelagent.analysis.load import Run
    from travelagent.runner.conditions import Grid, Point

MIN_GAIN_MS, GAIN_FRAC = 2.0, 0.05  # analysis.claims: the smallest gain worth having
HYBRID_MARGIN_MS, HYBRID_MARGIN_FRAC = 5.0, 0.10
ADVANTAGE_PCT = 10.0
MAP_PATHS = ("gateway", "rt-new", "rt-pooled", "rt-ws", "rt-new-stream", "hybrid")
COLUMNS = ["claim", "point", "client_rtt_ms", "service_rtt_ms", "llm", "source", "verdict",
           "effect", "ci_low", "ci_high", "unit"]  # fmt: skip


Judged = tuple[float, float, float, float, str]  # effect, low, high, line, verdict


@dataclass(frozen=True)
class MapClaim:
    id: str
    text: str
    unit: str
    axis: str  # the axis its crossover is stated along: "service" or "client"
    # (predictions by path, bands by path) -> (effect, lo, hi, line, verdict)
    judge: Callable[
        [dict[str, Prediction], dict[str, float]], tuple[float, float, float, float, str]
    ]


def _band(bands: dict[str, float], path: str) -> float:
    b = bands.get(path, bands.get("all", math.nan))
    return b / 100 if math.isfinite(b) else 0.0


def _diff(
    p: dict[str, Prediction], bands: dict[str, float], base: str, variant: str, *,
    base_first: bool = False, variant_first: bool = False,
) -> tuple[float, float, float]:  # fmt: skip
    """(base - variant, its low, its high) with each p50 widened by its path's band."""
    a = p[base].first_p50_ms if base_first else p[base].p50_ms
    b = p[variant].first_p50_ms if variant_first else p[variant].p50_ms
    ea, eb = _band(bands, base), _band(bands, variant)
    return a - b, a * (1 - ea) - b * (1 + eb), a * (1 + ea) - b * (1 - eb)


def _lowers(base: str, variant: str, **kw: bool) -> Callable[..., Judged]:
    def judge(p: dict[str, Prediction], bands: dict[str, float]) -> Judged:
        gain, lo, hi = _diff(p, bands, base, variant, **kw)
        margin = max(MIN_GAIN_MS, GAIN_FRAC * p[base].p50_ms)
        return gain, lo, hi, margin, V.lowers(lo, hi, margin)

    return judge


def _range(path: str, low: float, high: float) -> Callable[..., Judged]:
    def judge(p: dict[str, Prediction], bands: dict[str, float]) -> Judged:
        e = _band(bands, path)
        p50, p90 = p[path].p50_ms, p[path].p90_ms
        v = V.both(V.within(p50 * (1 - e), p50 * (1 + e), low, high),
                   V.at_most(p90 * (1 - e), p90 * (1 + e), high))  # fmt: skip
        return p90, p90 * (1 - e), p90 * (1 + e), high, v

    return judge


def _advantage(p: dict[str, Prediction], bands: dict[str, float]) -> Judged:
    """The gateway's advantage over the realtime path done well (persistent publisher socket),
    as a share of what the user waits on that realtime path."""
    rt = p["rt-ws"].p50_ms
    gain, lo, hi = _diff(p, bands, "rt-ws", "gateway")
    e = _band(bands, "rt-ws")
    pct, pct_lo, pct_hi = 100 * gain / rt, 100 * lo / (rt * (1 + e)), 100 * hi / (rt * (1 - e))
    return pct, pct_lo, pct_hi, ADVANTAGE_PCT, V.above(pct_lo, pct_hi, ADVANTAGE_PCT)


def _hybrid(p: dict[str, Prediction], bands: dict[str, float]) -> Judged:
    slower, lo, hi = _diff(p, bands, "hybrid", "gateway")
    margin = max(HYBRID_MARGIN_MS, HYBRID_MARGIN_FRAC * p["gateway"].p50_ms)
    return slower, lo, hi, margin, V.at_most(lo, hi, margin)


def _llm(p: dict[str, Prediction], bands: dict[str, float]) -> Judged:
    g = p["gateway"]
    total = g.parts["llm"] + g.parts["network"] + g.parts["proc"]
    lead = (g.parts["llm"] - max(g.parts["network"], g.parts["proc"])) / total
    e = _band(bands, "gateway")
    return lead, lead - e, lead + e, 0.0, V.above(lead - e, lead + e, 0.0)


MAP_CLAIMS: tuple[MapClaim, ...] = (
    MapClaim("gateway_advantage_10pct",
             "the gateway's advantage exceeds 10% of what the user waits on the realtime path "
             "with a persistent publisher socket", "%", "service", _advantage),
    MapClaim("gateway_lower", "the gateway path has lower latency than the realtime path "
             "(new connection per publish)", "ms", "service", _lowers("rt-new", "gateway")),
    MapClaim("socket_lowers", "a persistent publisher socket lowers latency (vs a new "
             "connection per publish)", "ms", "service", _lowers("rt-new", "rt-ws")),
    MapClaim("pooling_lowers", "connection pooling lowers latency", "ms", "service",
             _lowers("rt-new", "rt-pooled")),
    MapClaim("streaming_lowers", "streaming lowers the time to first content", "ms", "service",
             _lowers("rt-new", "rt-new-stream", variant_first=True)),
    MapClaim("gateway_range", "the gateway path takes ~50-200 ms (p90 <= 200)", "ms p90",
             "client", _range("gateway", 50, 200)),
    MapClaim("realtime_range", "the realtime path takes ~100-300 ms (p90 <= 300)", "ms p90",
             "client", _range("rt-new", 100, 300)),
    MapClaim("hybrid_keeps_gateway", "the hybrid keeps gateway latency", "ms", "service",
             _hybrid),
    MapClaim("llm_bottleneck", "the LLM, not the network, is the bottleneck (gateway)",
             "share lead", "service", _llm),
)  # fmt: skip


# -- the grid of a run ----------------------------------------------------------------------


def run_grid(run: Run) -> Grid | None:
    from travelagent.runner.conditions import ConditionsError, parse_grid

    raw = (run.meta.get("experiment") or {}).get("grid")
    if not raw:
        return None
    try:
        return parse_grid("run.json", raw)
    except ConditionsError:
        return None


def measured_cells(run: Run) -> dict[str, list[str]]:
    """Grid point name -> the run's cells measured there (from run.json's scenarios)."""
    scen = (run.meta.get("experiment") or {}).get("scenarios") or []
    by_entry = {str(s["name"]): str(s.get("point") or "") for s in scen if isinstance(s, dict)}
    out: dict[str, list[str]] = {}
    names = sorted(by_entry, key=len, reverse=True)
    for cell in run.cells["cell"].astype(str):
        entry = next((e for e in names if cell == e or cell.startswith(e + "-")), None)
        if entry and by_entry[entry]:
            out.setdefault(by_entry[entry], []).append(cell)
    return out


def base_links(run: Run) -> dict[str, dict[str, Any]]:
    """Link shapes of a measured cell (set-up round trips and the like), to vary per point."""
    import json

    for raw in run.cells.get("links", pd.Series(dtype=object)):
        try:
            links = json.loads(raw or "{}")
        except (TypeError, ValueError):
            continue
        if isinstance(links, dict) and links:
            return links
    return {}


def point_predictions(
    fit: Fit, point: Point, base: dict[str, Any], *, n: int = 1500
) -> dict[str, Prediction]:
    from travelagent.runner.conditions import point_links

    links = point_links(point, base)
    return {path: predict(fit, links, point.llm, path, n=n) for path in MAP_PATHS}


def bands_of(fit: Fit) -> dict[str, float]:
    return {k: float(v[0]) for k, v in fit.bands.items() if v and v[0] == v[0]}


# -- measured verdicts ----------------------------------------------------------------------


def _boot_median(x: np.ndarray, rng: np.random.Generator, reps: int = 1000) -> np.ndarray:
    idx = rng.integers(0, len(x), (reps, len(x)))
    return np.median(x[idx], axis=1)


def _measured_advantage(run: Run, cells: list[str]) -> tuple[float, float, float, str]:
    ok = run.ok()
    by = run.cells.set_index("cell")
    pick: dict[str, np.ndarray] = {}
    for c in cells:
        row = by.loc[c]
        key = ("gateway" if row["arch"] == "gateway" else
               "rt-ws" if row["arch"] == "realtime" and row.get("publish") == "ws-persistent"
               and not bool(row["streaming"]) else "")  # fmt: skip
        if key:
            pick[key] = ok[ok["cell"] == c]["service_ms"].astype(float).dropna().to_numpy()
    if len(pick) < 2 or min(len(v) for v in pick.values()) < 5:
        return math.nan, math.nan, math.nan, V.NOT_TESTED
    rng = np.random.default_rng(0)
    rt, gw = _boot_median(pick["rt-ws"], rng), _boot_median(pick["gateway"], rng)
    share = 100 * (rt - gw) / rt
    est = 100 * (np.median(pick["rt-ws"]) - np.median(pick["gateway"])) / np.median(pick["rt-ws"])
    lo, hi = float(np.percentile(share, 2.5)), float(np.percentile(share, 97.5))
    return float(est), lo, hi, V.above(lo, hi, ADVANTAGE_PCT)


def measured_verdicts(run: Run, cells: list[str]) -> dict[str, tuple[str, float, float, float]]:
    """claim id -> (verdict, estimate, ci_low, ci_high) from the point's own cells."""
    from travelagent.analysis.claims import claims_table
    from travelagent.analysis.load import subset_run

    sub = subset_run(run, cells)
    out = {}
    table = claims_table(sub)
    for r in table.to_dict("records"):
        out[str(r["id"])] = (str(r["verdict"]), float(r["estimate"] if r["estimate"] == r[
            "estimate"] else math.nan), float(r["ci_low"]), float(r["ci_high"]))  # fmt: skip
    est, lo, hi, v = _measured_advantage(run, cells)
    out["gateway_advantage_10pct"] = (v, est, lo, hi)
    return out


# -- the map --------------------------------------------------------------------------------


def claims_map(run: Run, fit: Fit, grid: Grid | None = None, *, n: int = 1500) -> pd.DataFrame:
    """One row per claim and grid point: measured or predicted, verdict, effect, interval."""
    grid = grid or run_grid(run)
    if grid is None:
        return pd.DataFrame(columns=COLUMNS)
    measured = measured_cells(run)
    base = base_links(run)
    bands = bands_of(fit)
    rows = []
    for point in grid.points():
        preds = point_predictions(fit, point, base, n=n)
        got = measured_verdicts(run, measured[point.name]) if point.name in measured else {}
        for claim in MAP_CLAIMS:
            key = point.key()
            if claim.id in got:
                v, est, lo, hi = got[claim.id]
                source = "measured"
            else:
                est, lo, hi, _, v = claim.judge(preds, bands)
                source = "predicted"
            rows.append({"claim": claim.id, "point": point.name, "client_rtt_ms":
                         key["client_rtt_ms"], "service_rtt_ms": key["service_rtt_ms"],
                         "llm": point.llm, "source": source, "verdict": v, "effect": est,
                         "ci_low": lo, "ci_high": hi, "unit": claim.unit})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


# -- crossovers -----------------------------------------------------------------------------


def crossings(xs: Any, ys: Any, line: float | Any) -> list[tuple[float, str]]:
    """Where ``ys - line`` changes sign along increasing ``xs``: (x by linear interpolation,
    "up" if it rises through the line there, else "down")."""
    x = np.asarray(xs, dtype=float)
    d = np.asarray(ys, dtype=float) - np.asarray(line, dtype=float)
    out = []
    for i in range(len(x) - 1):
        a, b = d[i], d[i + 1]
        if not (math.isfinite(a) and math.isfinite(b)) or a == b:
            continue
        if a * b < 0 or (b == 0 and a != 0):
            t = a / (a - b)
            out.append((float(x[i] + t * (x[i + 1] - x[i])), "up" if b > a else "down"))
    return out


FINE_SERVICE = (0, 2, 5, 10, 15, 20, 30, 40, 60, 80, 100, 130, 160, 200)
FINE_CLIENT = (0, 5, 10, 20, 30, 50, 75, 100, 150, 200, 250, 300, 400)


def _first_token_ms(fit: Fit, profile: str) -> float:
    from travelagent.agent.llm.profiles import get_profile

    ab = fit.llm_ms.get(profile)
    if ab:
        return float(np.median(np.asarray(ab, dtype=float)[:, 0]))
    p = get_profile(profile)
    return sum(p.ttft_ms) / 2 + fit.tool_share * sum(p.tool_call_ms) / 2


def crossover_table(fit: Fit, grid: Grid, base: dict[str, Any], *, n: int = 800) -> pd.DataFrame:
    """Per claim, LLM profile and level of the other axis: where along the claim's axis its
    effect crosses its line (model), and the effect at the axis' ends."""
    from travelagent.runner.conditions import Level, Point

    bands = bands_of(fit)
    cache: dict[tuple[str, str, float, str], dict[str, Prediction]] = {}

    def at(axis: str, fixed: Level, x: float, profile: str) -> dict[str, Prediction]:
        key = (axis, fixed.name, x, profile)
        if key not in cache:
            moving = Level("x", x)
            pt = (
                Point(fixed, moving, profile)
                if axis == "service"
                else Point(moving, fixed, profile)
            )
            cache[key] = point_predictions(fit, pt, base, n=n)
        return cache[key]

    rows = []
    for profile in grid.llm:
        for claim in MAP_CLAIMS:
            fixed_levels = grid.client if claim.axis == "service" else grid.service
            fine = FINE_SERVICE if claim.axis == "service" else FINE_CLIENT
            for fixed in fixed_levels:
                effects, lines = [], []
                for x in fine:
                    e, _, _, line, _ = claim.judge(at(claim.axis, fixed, float(x), profile), bands)
                    effects.append(e)
                    lines.append(line)
                rows.append({"claim": claim.id, "llm": profile, "axis": claim.axis,
                             "fixed": fixed.name, "fixed_rtt_ms": fixed.rtt_ms,
                             "crossings": crossings(fine, effects, lines),
                             "effect_low_end": effects[0], "effect_high_end": effects[-1],
                             "line_low_end": lines[0], "line_high_end": lines[-1],
                             "first_token_ms": _first_token_ms(fit, profile)})  # fmt: skip
    return pd.DataFrame(rows)


_AXIS_WORDS = {"service": "the worker-to-realtime RTT", "client": "the client RTT"}
_FIXED_WORDS = {"service": "at a client RTT of", "client": "at a worker-to-realtime RTT of"}
_HOLDS = {
    "gateway_advantage_10pct": "the gateway's advantage exceeds 10% of what the user waits "
    "(against the realtime path with a persistent publisher socket)",
    "gateway_lower": "the gateway's gain over the realtime path (new connection per publish) is "
    "worth having (>= max(2 ms, 5%))",
    "socket_lowers": "a persistent publisher socket is worth having (gain >= max(2 ms, 5%))",
    "pooling_lowers": "connection pooling is worth having (gain >= max(2 ms, 5%))",
    "streaming_lowers": "streaming's earlier first chunk is worth having (gain >= max(2 ms, 5%))",
    "gateway_range": "the gateway's p90 stays within the note's 200 ms",
    "realtime_range": "the realtime path's p90 stays within the note's 300 ms",
    "hybrid_keeps_gateway": "the hybrid stays within max(5 ms, 10%) of the gateway",
    "llm_bottleneck": "the LLM takes more of the gateway's time than the network or processing",
}
_ABOVE_MEANS_HOLDS = {"gateway_advantage_10pct", "gateway_lower", "socket_lowers",
                      "pooling_lowers", "streaming_lowers", "llm_bottleneck"}  # fmt: skip


def _rtt(x: float) -> str:
    """A crossing's RTT in words: whole ms from 10 ms up, tenths below (so a crossing at
    0.4 ms does not read "below 0 ms")."""
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"


def crossover_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per claim and LLM profile, from ``crossover_table``."""
    out: list[str] = []
    if table.empty:
        return out
    for (claim, profile), g in table.groupby(["claim", "llm"], sort=False):
        axis = str(g["axis"].iloc[0])
        above_holds = claim in _ABOVE_MEANS_HOLDS
        parts: list[str] = []
        always: list[str] = []
        never: list[str] = []
        for r in g.to_dict("records"):
            fixed = f"{r['fixed_rtt_ms']:g} ms"
            xs = r["crossings"]
            holds_low = (r["effect_low_end"] > r["line_low_end"]) == above_holds
            if not xs:
                (always if holds_low else never).append(fixed)
                continue
            x, direction = xs[0]
            holds_above = (direction == "up") == above_holds
            parts.append(f"{'above' if holds_above else 'below'} {_rtt(x)} ms "
                         f"{_FIXED_WORDS[axis]} {fixed}")  # fmt: skip
        ttft = float(g["first_token_ms"].iloc[0])
        holds = _HOLDS.get(str(claim), str(claim))
        lead = f"{claim}: {holds} with {profile} (first token ~{ttft:.0f} ms)"
        bits = []
        if parts:
            bits.append(f"when {_AXIS_WORDS[axis]} is " + "; ".join(parts))
        if always:
            bits.append(f"everywhere on the axis {_FIXED_WORDS[axis]} {', '.join(always)}")
        if never:
            bits.append(f"nowhere on the axis {_FIXED_WORDS[axis]} {', '.join(never)}")
        out.append(lead + " " + "; ".join(bits) + ".")
    return out


# -- the figure -----------------------------------------------------------------------------

VERDICT_COLOURS = {V.CONFIRMED: "#5cb85c", V.REFUTED: "#d9534f", V.INCONCLUSIVE: "#f0ad4e",
                   V.NOT_TESTED: "#bbbbbb"}  # fmt: skip


def heatmap(cmap: pd.DataFrame, claim: str) -> Figure:
    """The claim's verdict over client RTT x service RTT, one panel per LLM profile; measured
    points are outlined and marked M, the effect is written in each square."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    d = cmap[cmap["claim"] == claim]
    profiles = list(dict.fromkeys(d["llm"]))
    clients = sorted(d["client_rtt_ms"].unique())
    services = sorted(d["service_rtt_ms"].unique())
    fig, axes = plt.subplots(1, max(1, len(profiles)), figsize=(3.4 * max(1, len(profiles)), 3.2),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, prof in zip(axes[0], profiles, strict=False):
        sub = d[d["llm"] == prof]
        for r in sub.to_dict("records"):
            i, j = clients.index(r["client_rtt_ms"]), services.index(r["service_rtt_ms"])
            ax.add_patch(Rectangle((i, j), 1, 1, color=VERDICT_COLOURS.get(r["verdict"], "#fff")))
            if r["source"] == "measured":
                ax.add_patch(Rectangle((i + 0.04, j + 0.04), 0.92, 0.92, fill=False, lw=2.2,
                                       ec="black"))  # fmt: skip
            label = "–" if r["effect"] != r["effect"] else f"{r['effect']:.3g}"
            ax.text(i + 0.5, j + 0.5, label + ("\nM" if r["source"] == "measured" else ""),
                    ha="center", va="center", fontsize=7)  # fmt: skip
        ax.set_xlim(0, len(clients))
        ax.set_ylim(0, len(services))
        ax.set_xticks([k + 0.5 for k in range(len(clients))], [f"{c:g}" for c in clients])
        ax.set_yticks([k + 0.5 for k in range(len(services))], [f"{s:g}" for s in services])
        ax.set_xlabel("client RTT (ms)")
        ax.set_ylabel("worker-realtime RTT (ms)")
        ax.set_title(prof, fontsize=9)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7)
    fig.suptitle(f"{claim} (M: measured; others predicted)", fontsize=10)
    return fig
