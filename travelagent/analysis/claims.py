"""The architecture note's claims as data, each with a verdict computed from a run.

Every claim compares a quantity against a line (or zero) through the quantity's 95 % interval
(``verdicts``): ``confirmed``, ``refuted``, ``inconclusive`` (the interval straddles the line;
the evidence says how much more data would decide it) or ``not tested``. Intervals resample
repetitions, then messages (or pairs), so they carry the variation between repetitions too.
The rules, one per claim, are stated beside each function and in docs/analysis.md:

- "X lowers latency": the gain of the variant over its baseline (``compare.compare_cells``,
  lowest load; paired differences of what the user waits when the messages pair up, else the
  time outside the LLM). Confirmed when the interval lies above 0; refuted when it lies below
  the smallest gain worth having, ``max(MIN_GAIN_MS, GAIN_FRAC x the baseline's median service
  time)``; inconclusive otherwise. Streaming compares the first chunk with the whole reply.
- A claimed range "~lo-hi ms": the p50's interval within [lo, hi] and the p90's not above hi.
- Shares (HTTP legs, LLM): ratios of means over messages, with their intervals.

Cells the testbed's self-check flagged (``runner.selfcheck``) are left out of every verdict,
and the claims say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.analysis.compare import (
    GATEWAY_BASELINES,
    OVERHEAD,
    REALTIME_BASELINES,
    baseline_cell,
    compare_cells,
    find_pair,
    sample,
)
from travelagent.analysis.decompose import decompose_messages
from travelagent.analysis.hops import hop_counts
from travelagent.analysis.stats import (
    cluster_bootstrap_quantile,
    cluster_bootstrap_ratio,
    group_indices,
    interval,
)
from travelagent.analysis.verdicts import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_TESTED,
    REFUTED,
    above,
    at_most,
    both,
    lowers,
    needed,
    within,
)

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

__all__ = ["CLAIMS", "CONFIRMED", "INCONCLUSIVE", "NOT_TESTED", "REFUTED", "claims_table"]

# "The hybrid keeps gateway latency": hybrid may be slower than gateway by at most this much.
HYBRID_MARGIN_MS = 5.0
HYBRID_MARGIN_FRAC = 0.10
# "X lowers latency": the smallest gain worth having (a user does not notice less, and an
# architecture is not changed for less): 5 % of what the baseline's user waits, at least 2 ms.
MIN_GAIN_MS = 2.0
GAIN_FRAC = 0.05

Verdict = dict[str, Any]
NAN = float("nan")


def _v(
    verdict: str,
    evidence: str,
    rationale: str,
    *,
    quantity: str = "",
    estimate: float = NAN,
    ci: tuple[float, float] = (NAN, NAN),
    threshold: str = "",
    n: int = 0,
    repetitions: int = 0,
    needed_text: str = "",
    assumptions: str = "",
    cells: str = "",
    **numbers: Any,
) -> Verdict:
    return {
        "verdict": verdict,
        "evidence": evidence,
        "rationale": rationale,
        "quantity": quantity,
        "estimate": estimate,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "threshold": threshold,
        "n": n,
        "repetitions": repetitions,
        "needed": needed_text,
        "assumptions": assumptions,
        "cells": cells,
        "numbers": numbers,
    }


_METRIC_WORDS = {
    OVERHEAD: "time outside the LLM",
    "service_ms": "service time",
    "ttfc_ms": "time to first chunk",
}


def _ci(lo: float, hi: float, unit: str = " ms", digits: int = 1) -> str:
    return f"[95% CI {lo:.{digits}f}, {hi:.{digits}f}]{unit}"


def _fmt_compare(c: dict[str, Any]) -> str:
    bm, vm = c["base_metric"], c["variant_metric"]
    what = _METRIC_WORDS.get(bm, bm)
    if vm != bm:
        what = f"{what} vs {_METRIC_WORDS.get(vm, vm)}"
    how = (
        f"paired: {c['n_pairs']} messages asked alike in both, median of their differences"
        if c["paired"]
        else f"unpaired (n={c['n_base']} vs {c['n_variant']}), difference of medians"
    )
    text = (
        f"{c['base_cell']} vs {c['variant_cell']}: {what} p50 {c['base_p50_ms']:.1f} vs "
        f"{c['variant_p50_ms']:.1f} ms; gain {c['gain_ms']:.1f} ms "
        f"{_ci(c['gain_lo_ms'], c['gain_hi_ms'])} ({how}; {c['repetitions']} repetition(s))"
    )
    if bm != OVERHEAD and math.isfinite(c.get("base_overhead_p50_ms", NAN)):
        text += (
            f"; time outside the LLM p50 {c['base_overhead_p50_ms']:.1f} vs "
            f"{c['variant_overhead_p50_ms']:.1f} ms"
        )
    return text


def _numbers(c: dict[str, Any]) -> dict[str, Any]:
    """A comparison's figures as a verdict's extra numbers (its own keys kept apart)."""
    return {k: v for k, v in c.items() if k not in ("repetitions",)}


def _needed(verdict: str, est: float, lo: float, hi: float, line: float, n: int, reps: int) -> str:
    if verdict != INCONCLUSIVE:
        return ""
    return needed(est, lo, hi, line, n, reps).text()


def _lowers(
    run: Run,
    bases: list[dict[str, Any]],
    variant: dict[str, Any],
    what: str,
    *,
    ignore: tuple[str, ...] = (),
    base_metric: str = OVERHEAD,
    variant_metric: str | None = None,
) -> Verdict:
    pair = find_pair(run, bases, variant, ignore=ignore)
    if pair is None:
        return _v(NOT_TESTED, "", f"the run has no pair of cells differing only in {what}")
    c = compare_cells(run, pair[0], pair[1], base_metric=base_metric,
                      variant_metric=variant_metric)  # fmt: skip
    g, lo, hi = c["gain_ms"], c["gain_lo_ms"], c["gain_hi_ms"]
    margin = max(MIN_GAIN_MS, GAIN_FRAC * c["base_service_p50_ms"])
    verdict = lowers(lo, hi, margin)
    why = {
        CONFIRMED: f"{what} lowers latency by {g:.1f} ms; the interval lies above 0",
        REFUTED: (
            f"{what} gains at most {hi:.1f} ms, under the {margin:.1f} ms worth having"
            if hi >= 0
            else f"{what} raises latency by {-g:.1f} ms"
        ),
        INCONCLUSIVE: (
            f"the gain's interval spans 0 and reaches the {margin:.1f} ms worth having: "
            "this run cannot tell"
        ),
        NOT_TESTED: "the comparison has no values",
    }[verdict]
    n = c["n_pairs"] if c["paired"] else min(c["n_base"], c["n_variant"])
    line = 0.0 if g >= margin / 2 else margin
    return _v(
        verdict, _fmt_compare(c), why,
        quantity=f"gain in {_METRIC_WORDS.get(c['variant_metric'], c['variant_metric'])} (ms)",
        estimate=g, ci=(lo, hi), threshold=f"> 0 (worth having: >= {margin:.1f})", n=n,
        repetitions=c["repetitions"], needed_text=_needed(verdict, g, lo, hi, line, n,
                                                          c["repetitions"]),
        cells=f"{pair[0]} vs {pair[1]}", margin_ms=margin, **_numbers(c),
    )  # fmt: skip


def claim_hop_counts(run: Run) -> Verdict:
    """Confirmed when the counted traversals are within 2-3 (gateway) and 5-6 (realtime).
    Counted, not sampled: every complete message gives the same count, so there is no
    interval; n is the number of messages counted."""
    hc = hop_counts(run)
    if hc.empty or not {"gateway", "realtime"} <= set(hc["arch"]):
        return _v(NOT_TESTED, "", "the run lacks fully stamped gateway and realtime messages")
    parts = [
        f"{r['arch']}{'/' + str(r['publish']) if r['publish'] else ''}: {r['traversals']} "
        f"({r['network_hops']} one-way legs + {r['http_exchanges']} HTTP responses; "
        f"range {r['traversals_min']}-{r['traversals_max']} over {r['messages']} messages)"
        for r in hc.to_dict("records")
    ]
    ok = bool(hc[hc["arch"].isin(["gateway", "realtime"])]["within_claim"].all())
    why = (
        "counted hops fall in the claimed ranges"
        if ok
        else "some counted hop numbers fall outside the claimed ranges"
    )
    gw = hc[hc["arch"] == "gateway"]
    rt = hc[hc["arch"] == "realtime"]
    return _v(
        CONFIRMED if ok else REFUTED, "; ".join(parts), why,
        quantity="network traversals per message (gateway; realtime)",
        estimate=float(gw["traversals"].iloc[0]),
        ci=(float(gw["traversals_min"].min()), float(gw["traversals_max"].max())),
        threshold="2-3 (gateway); 5-6 (realtime: "
        + ", ".join(f"{t}" for t in rt["traversals"]) + ")",
        n=int(hc["messages"].sum()), counts=hc.to_dict("records"),
    )  # fmt: skip


def _link_delays(run: Run, config: str) -> tuple[dict[str, Any], str]:
    cells = run.cells[run.cells["config"] == config] if "config" in run.cells else run.cells
    cell = cells.iloc[0]
    try:
        links = json.loads(cell.get("links") or "{}")
    except (TypeError, json.JSONDecodeError):
        links = {}
    return links, str(cell.get("arch") or "")


def assumptions(run: Run, config: str) -> str:
    """Which numbers behind a cell's latency the scenario assumed, and which were measured."""
    from travelagent.agent.llm.profiles import PROFILES
    from travelagent.analysis.model import path_legs

    links, arch = _link_delays(run, config)
    cells = run.cells[run.cells["config"] == config] if "config" in run.cells else run.cells
    profile = str(cells.iloc[0].get("profile") or "")
    legs = path_legs(arch) if arch else []
    parts, total = [], 0.0
    for leg, link in legs:
        delay = float((links.get(link) or {}).get("delay_ms") or 0.0)
        total += delay
        parts.append(f"{leg} {delay:g}")
    text = (
        f"Assumed by the scenario: one-way link delays {', '.join(parts)} ms "
        f"(= {total:g} ms per message, jitter and set-up round trips as configured)"
        if parts
        else "Assumed by the scenario: no link delays recorded"
    )
    p = PROFILES.get(profile)
    if p is not None:
        text += (
            f"; LLM profile '{p.name}': first token {p.ttft_ms[0]:g}-{p.ttft_ms[1]:g} ms, "
            f"{p.token_interval_ms[0]:g}-{p.token_interval_ms[1]:g} ms per token, tool calls "
            f"+{p.tool_call_ms[0]:g}-{p.tool_call_ms[1]:g} ms ({p.source})"
        )
    per = decompose_messages(run)
    msgs = sample(run, config)
    d = per[per["msg_id"].isin(msgs["msg_id"])] if "msg_id" in msgs else per.iloc[0:0]
    if len(d):
        llm, total_ms = float(d["llm_ms"].mean()), float(d["total_ms"].mean())
        text += (
            f". Measured: the LLM's drawn time (mean {llm:.1f} ms) and everything else, "
            f"processing, queueing and the links' own error: mean "
            f"{total_ms - llm - total:.1f} ms beyond the configured delays, of a mean "
            f"service time of {total_ms:.1f} ms"
        )
    return text + "."


def _range(run: Run, filters: list[dict[str, Any]], lo: float, hi: float, name: str) -> Verdict:
    cfg = baseline_cell(run, filters)
    if cfg is None:
        return _v(NOT_TESTED, "", f"the run has no {name} cell with replies")
    s = sample(run, cfg)
    v = s["value"].to_numpy(dtype="float64")
    groups = group_indices(s["repetition"])
    p50, p90 = float(np.percentile(v, 50)), float(np.percentile(v, 90))
    c50 = interval(cluster_bootstrap_quantile(groups, v, 0.5))
    c90 = interval(cluster_bootstrap_quantile(groups, v, 0.9, seed=7))
    v50, v90 = within(*c50, lo, hi), at_most(*c90, hi)
    verdict = both(v50, v90)
    reps = len(groups)
    ev = (
        f"{cfg}: p50 {p50:.1f} ms {_ci(*c50)}, p90 {p90:.1f} ms {_ci(*c90)} "
        f"(n={len(v)}, {reps} repetition(s)); claimed {lo:g}-{hi:g} ms"
    )
    if verdict == CONFIRMED:
        why = "the p50's interval lies inside the range and the p90's not above it"
    elif v50 == REFUTED:
        why = "the p50's interval lies " + ("below" if c50[1] < lo else "above") + " the range"
    elif v90 == REFUTED:
        why = "the p90's interval lies above the range"
    else:
        why = "an interval straddles an end of the range: this run cannot tell"
    need = ""
    if verdict == INCONCLUSIVE:
        cands = []
        if v50 == INCONCLUSIVE:
            line = lo if abs(p50 - lo) < abs(p50 - hi) else hi
            cands.append(needed(p50, *c50, line, len(v), reps))
        if v90 == INCONCLUSIVE:
            cands.append(needed(p90, *c90, hi, len(v), reps))
        need = max(cands, key=lambda x: x.factor).text()
    return _v(
        verdict, ev, why, quantity=f"p50 of {name} service time (ms); p90 in p90_* columns",
        estimate=p50, ci=c50, threshold=f"{lo:g}-{hi:g} (p90 <= {hi:g})", n=len(v),
        repetitions=reps, needed_text=need, assumptions=assumptions(run, cfg), cells=cfg,
        p90=p90, p90_ci_low=c90[0], p90_ci_high=c90[1],
    )  # fmt: skip


def claim_gateway_range(run: Run) -> Verdict:
    return _range(run, GATEWAY_BASELINES, 50, 200, "gateway")


def claim_realtime_range(run: Run) -> Verdict:
    return _range(run, REALTIME_BASELINES, 100, 300, "realtime")


def claim_gateway_lower(run: Run) -> Verdict:
    return _lowers(run, REALTIME_BASELINES, {"arch": "gateway"}, "the gateway path",
                   ignore=("publish", "webhook_mode"))  # fmt: skip


def _parts(run: Run, config: str) -> pd.DataFrame:
    """The config's stamped ok messages with their decomposition and repetition."""
    per = decompose_messages(run)
    s = sample(run, config)
    if "msg_id" not in s or per.empty:
        return per.iloc[0:0]
    reps = s.set_index("msg_id")["repetition"]
    d = per[per["msg_id"].isin(reps.index)].copy()
    d["repetition"] = d["msg_id"].map(reps).to_numpy()
    return d.reset_index(drop=True)


def _ratio_boot(
    d: pd.DataFrame, num: str | list[str], den: str | list[str], seed: int
) -> tuple[float, tuple[float, float]]:
    """sum(num) / sum(den) over messages (a ratio of means), with its interval."""
    a = d[num if isinstance(num, list) else [num]].sum(axis=1).to_numpy(dtype="float64")
    b = d[den if isinstance(den, list) else [den]].sum(axis=1).to_numpy(dtype="float64")
    est = float(a.sum() / b.sum()) if b.sum() > 0 else NAN
    return est, interval(cluster_bootstrap_ratio(group_indices(d["repetition"]), a, b, seed=seed))


def claim_http_bottleneck(run: Run) -> Verdict:
    """Confirmed when the HTTP legs (webhook POST, HTTP publish) surely take more than half of
    the realtime path's time outside the LLM (network + processing); ratio of means."""
    http_publish = [f for f in REALTIME_BASELINES if str(f.get("publish", "")).startswith("http")]
    cell = baseline_cell(run, http_publish)
    d = _parts(run, cell) if cell else None
    if cell is None or d is None or d.empty:
        return _v(NOT_TESTED, "", "the run has no stamped realtime cell with HTTP publish")
    share, ci = _ratio_boot(d, "http_ms", ["network_ms", "processing_ms"], seed=11)
    verdict = above(*ci, 0.5)
    m = d[["network_ms", "processing_ms", "http_ms", "llm_ms", "total_ms"]].mean()
    non_llm = m["network_ms"] + m["processing_ms"]
    reps = int(d["repetition"].nunique())
    ev = (
        f"{cell}: HTTP legs {m['http_ms']:.1f} ms of {non_llm:.1f} ms outside the LLM, share "
        f"{100 * share:.1f}% {_ci(100 * ci[0], 100 * ci[1], '%')} (n={len(d)}, {reps} "
        f"repetition(s)); LLM {m['llm_ms']:.1f} ms; total {m['total_ms']:.1f} ms"
    )
    why = {
        CONFIRMED: "the HTTP legs are surely most of the non-LLM time",
        REFUTED: "the HTTP legs are surely less than half of the non-LLM time",
        INCONCLUSIVE: "the share's interval straddles one half: this run cannot tell",
        NOT_TESTED: "no share could be computed",
    }[verdict]
    return _v(
        verdict, ev, why, quantity="share of the HTTP legs in the time outside the LLM",
        estimate=share, ci=ci, threshold="> 0.5", n=len(d), repetitions=reps,
        needed_text=_needed(verdict, share, *ci, 0.5, len(d), reps), cells=cell,
        http_share=share, http_ms=float(m["http_ms"]), network_ms=float(m["network_ms"]),
        processing_ms=float(m["processing_ms"]), llm_ms=float(m["llm_ms"]),
        total_ms=float(m["total_ms"]),
    )  # fmt: skip


def claim_socket_lowers(run: Run) -> Verdict:
    return _lowers(
        run,
        [
            {"arch": "realtime", "publish": "http-new"},
            {"arch": "realtime", "publish": "http-pooled"},
        ],
        {"arch": "realtime", "publish": "ws-persistent"},
        "a persistent publisher socket",
    )


def claim_pooling_lowers(run: Run) -> Verdict:
    return _lowers(
        run,
        [{"arch": "realtime", "publish": "http-new"}],
        {"arch": "realtime", "publish": "http-pooled"},
        "connection pooling",
    )


def claim_streaming_lowers(run: Run) -> Verdict:
    """Perceived latency: the streamed reply's first chunk against the whole unstreamed reply."""
    return _lowers(
        run,
        [{"arch": "realtime", "streaming": False}],
        {"arch": "realtime", "streaming": True},
        "streaming (time to first chunk)",
        base_metric="service_ms",
        variant_metric="ttfc_ms",
    )


def claim_llm_bottleneck(run: Run) -> Verdict:
    """Confirmed when, on the gateway path, the LLM surely takes more of the service time than
    the network and than the rest of the processing (shares of mean times, with intervals)."""
    cell = baseline_cell(run, GATEWAY_BASELINES)
    d = _parts(run, cell) if cell else None
    if cell is None or d is None or d.empty:
        return _v(NOT_TESTED, "", "the run has no stamped gateway cell")
    llm, llm_ci = _ratio_boot(d, "llm_ms", "total_ms", seed=21)
    net, net_ci = _ratio_boot(d, "network_ms", "total_ms", seed=22)
    proc, proc_ci = _ratio_boot(d, "processing_ms", "total_ms", seed=23)
    groups = group_indices(d["repetition"])
    lm, nm, pm, tm = (d[c].to_numpy(dtype="float64")
                      for c in ("llm_ms", "network_ms", "processing_ms", "total_ms"))  # fmt: skip
    lead_net = interval(cluster_bootstrap_ratio(groups, lm - nm, seed=24))
    lead_proc = interval(cluster_bootstrap_ratio(groups, lm - pm, seed=25))
    verdict = both(above(*lead_net, 0.0), above(*lead_proc, 0.0))
    reps = len(groups)
    ev = (
        f"{cell}: shares of the service time (mean {tm.mean():.1f} ms): LLM {100 * llm:.1f}% "
        f"{_ci(100 * llm_ci[0], 100 * llm_ci[1], '%')}, network {100 * net:.1f}% "
        f"{_ci(100 * net_ci[0], 100 * net_ci[1], '%')}, processing {100 * proc:.1f}% "
        f"{_ci(100 * proc_ci[0], 100 * proc_ci[1], '%')} (n={len(d)}, {reps} repetition(s))"
    )
    why = {
        CONFIRMED: "the LLM is surely the largest part",
        REFUTED: "the LLM is surely not the largest part",
        INCONCLUSIVE: "the LLM's lead over another part is within its interval",
        NOT_TESTED: "no shares could be computed",
    }[verdict]
    gap = min(lm.mean() - nm.mean(), lm.mean() - pm.mean())
    lo_gap = min(lead_net[0], lead_proc[0])
    hi_gap = min(lead_net[1], lead_proc[1])
    return _v(
        verdict, ev, why, quantity="LLM share of the service time (network share in numbers)",
        estimate=llm, ci=llm_ci, threshold="> network share and > processing share",
        n=len(d), repetitions=reps,
        needed_text=_needed(verdict, gap, lo_gap, hi_gap, 0.0, len(d), reps), cells=cell,
        network_share=net, network_share_ci_low=net_ci[0], network_share_ci_high=net_ci[1],
        processing_share=proc,
    )  # fmt: skip


def claim_hybrid_keeps_gateway(run: Run) -> Verdict:
    """Confirmed when the upper end of the interval of (hybrid - gateway) is at most
    max(5 ms, 10 % of the gateway's median service time); refuted when its lower end is above
    that margin; inconclusive otherwise."""
    pair = find_pair(run, [{"arch": "gateway"}], {"arch": "hybrid"})
    if pair is None:
        return _v(NOT_TESTED, "", "the run has no hybrid cell paired with a gateway cell")
    c = compare_cells(run, pair[0], pair[1], base_metric=OVERHEAD)
    # the margin is a share of the latency the user sees (the gateway's median service time)
    margin = max(HYBRID_MARGIN_MS, HYBRID_MARGIN_FRAC * c["base_service_p50_ms"])
    slower, slow_lo, slow_hi = -c["gain_ms"], -c["gain_hi_ms"], -c["gain_lo_ms"]
    verdict = at_most(slow_lo, slow_hi, margin)
    if verdict == CONFIRMED:
        why = f"hybrid is at most {slow_hi:.1f} ms slower (margin {margin:.1f} ms)"
    elif verdict == REFUTED:
        why = f"hybrid is at least {slow_lo:.1f} ms slower (margin {margin:.1f} ms)"
    else:
        why = f"hybrid may be up to {slow_hi:.1f} ms slower (margin {margin:.1f} ms)"
    n = c["n_pairs"] if c["paired"] else min(c["n_base"], c["n_variant"])
    return _v(
        verdict, _fmt_compare(c), why, quantity="hybrid minus gateway (ms)", estimate=slower,
        ci=(slow_lo, slow_hi), threshold=f"<= {margin:.1f}", n=n, repetitions=c["repetitions"],
        needed_text=_needed(verdict, slower, slow_lo, slow_hi, margin, n, c["repetitions"]),
        cells=f"{pair[0]} vs {pair[1]}", margin_ms=margin, **_numbers(c),
    )  # fmt: skip


CLAIMS: list[tuple[str, str, Callable[[Run], Verdict]]] = [
    ("hop_counts", "The gateway takes ~2-3 network hops, the realtime path ~5-6",
     claim_hop_counts),
    ("gateway_range", "Gateway latency is ~50-200 ms", claim_gateway_range),
    ("realtime_range", "Realtime latency is ~100-300 ms", claim_realtime_range),
    ("gateway_lower", "The gateway has lower latency than the realtime path",
     claim_gateway_lower),
    ("http_bottleneck", "HTTP round trips are the realtime path's bottleneck",
     claim_http_bottleneck),
    ("socket_lowers", "A persistent worker-to-realtime socket lowers realtime latency",
     claim_socket_lowers),
    ("pooling_lowers", "HTTP connection pooling lowers realtime latency", claim_pooling_lowers),
    ("streaming_lowers", "Streaming lowers (perceived) realtime latency", claim_streaming_lowers),
    ("llm_bottleneck", "The bottleneck is the LLM, not the network", claim_llm_bottleneck),
    ("hybrid_keeps_gateway", "The hybrid keeps the gateway's latency",
     claim_hybrid_keeps_gateway),
]  # fmt: skip


def usable(run: Run) -> tuple[Run, list[str]]:
    """The run without the cells its self-check flagged, and the names of those cells."""
    from travelagent.analysis.load import subset_run

    if "flagged" not in run.cells or not run.cells["flagged"].any():
        return run, []
    flagged = [str(c) for c in run.cells.index[run.cells["flagged"].astype(bool)]]
    keep = [str(c) for c in run.cells.index if str(c) not in flagged]
    return subset_run(run, keep), flagged


COLUMNS = ["id", "claim", "verdict", "quantity", "estimate", "ci_low", "ci_high", "threshold",
           "n", "repetitions", "needed", "evidence", "rationale", "assumptions", "cells",
           "excluded", "numbers"]  # fmt: skip


def claims_table(run: Run, *, exclude_flagged: bool = True) -> pd.DataFrame:
    """One row per claim: id, claim, verdict, the quantity with its estimate, interval,
    threshold and n, what more data would decide it, evidence, rationale, the scenario's
    assumptions behind it, the cells used and the flagged cells left out."""
    excluded: list[str] = []
    if exclude_flagged:
        run, excluded = usable(run)
    rows = []
    for cid, text, fn in CLAIMS:
        try:
            v = fn(run)
        except Exception as err:  # one broken claim must not hide the others
            v = _v(NOT_TESTED, "", f"could not be evaluated: {type(err).__name__}: {err}")
        used = set(str(v.get("cells", "")).replace(" vs ", ",").split(","))
        left_out = [c for c in excluded if any(c.startswith(u + "-r") or c == u for u in used)]
        rows.append({"id": cid, "claim": text, **v, "excluded": ", ".join(left_out)})
    return pd.DataFrame(rows, columns=COLUMNS)


CSV_COLUMNS = ["claim_id", "verdict", "quantity", "estimate", "ci_low", "ci_high", "threshold",
               "n", "repetitions", "needed", "claim", "cells", "excluded", "rationale",
               "evidence"]  # fmt: skip


def claims_csv(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as ``claims.csv`` holds it: the contract's columns first, then the
    extra numbers some claims carry (a range claim's p90 and its interval, shares)."""
    out = table.rename(columns={"id": "claim_id"})[CSV_COLUMNS].copy()
    extra = ["p90", "p90_ci_low", "p90_ci_high", "network_share", "network_share_ci_low",
             "network_share_ci_high", "margin_ms", "paired"]  # fmt: skip
    for key in extra:
        out[key] = [n.get(key, NAN) if isinstance(n, dict) else NAN for n in table["numbers"]]
    return out


def stability_table(run: Run) -> pd.DataFrame:
    """Each claim's verdict from each repetition alone and from all of them pooled."""
    reps = sorted(int(r) for r in run.cells.get("repetition", pd.Series([1])).unique())
    pooled = claims_table(run)
    out = pooled[["id", "claim"]].copy()
    if len(reps) > 1:
        from travelagent.analysis.load import subset_run

        for r in reps:
            cells = [str(c) for c in run.cells.index[run.cells["repetition"] == r]]
            out[f"repetition {r}"] = claims_table(subset_run(run, cells))["verdict"].to_numpy()
    out["pooled"] = pooled["verdict"].to_numpy()
    per = [c for c in out.columns if c.startswith("repetition ")]
    out["agree"] = [
        "all" if all(row[c] == row["pooled"] for c in per) else "differ"
        for _, row in out.iterrows()
    ] if per else "one repetition"  # fmt: skip
    return out
