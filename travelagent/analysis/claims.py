"""The architecture note's claims as data, each with a verdict computed from a run.

Verdicts: ``confirmed``, ``refuted``, or ``not tested`` when the run lacks the cells (or the
stamps) a claim needs. The rules, one per claim, are stated beside each function and in
docs/analysis.md. Shared rules:

- "X lowers latency": compare the medians of a baseline cell and a variant cell that differ
  only in X (``compare.find_pair``, lowest load). Confirmed when the 95 % bootstrap interval of
  (baseline median - variant median) lies entirely above 0; otherwise refuted (the rationale
  says whether the difference is undetectable or the other way round). Paths and transports
  are compared on each message's time outside the LLM (service time minus its own
  agent.start -> llm.done), since the LLM's time varies with the answer, not with the path;
  streaming on the time to the first chunk against the whole unstreamed reply.
- A claimed range "~lo-hi ms": confirmed when the median lies in [lo, hi] and the 90th
  percentile does not exceed hi.
"""

from __future__ import annotations

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
    effect,
    find_pair,
    values,
)
from travelagent.analysis.decompose import decompose_messages
from travelagent.analysis.hops import hop_counts

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

CONFIRMED, REFUTED, NOT_TESTED = "confirmed", "refuted", "not tested"
# "The hybrid keeps gateway latency": hybrid may be slower than gateway by at most this much.
HYBRID_MARGIN_MS = 5.0
HYBRID_MARGIN_FRAC = 0.10

Verdict = dict[str, Any]


def _v(verdict: str, evidence: str, rationale: str, **numbers: Any) -> Verdict:
    return {"verdict": verdict, "evidence": evidence, "rationale": rationale, "numbers": numbers}


_METRIC_WORDS = {
    OVERHEAD: "time outside the LLM",
    "service_ms": "service time",
    "ttfc_ms": "time to first chunk",
}


def _fmt_ci(c: dict[str, Any]) -> str:
    bm, vm = c["base_metric"], c["variant_metric"]
    what = _METRIC_WORDS.get(bm, bm)
    if vm != bm:
        what = f"{what} vs {_METRIC_WORDS.get(vm, vm)}"
    text = (
        f"{c['base_cell']} (n={c['n_base']}) vs {c['variant_cell']} (n={c['n_variant']}): "
        f"{what} p50 {c['base_p50_ms']:.1f} vs {c['variant_p50_ms']:.1f} ms, "
        f"gain {c['gain_ms']:.1f} ms [95% CI {c['gain_lo_ms']:.1f}, {c['gain_hi_ms']:.1f}]"
    )
    if bm != "service_ms":
        text += (
            f"; service time p50 {c['base_service_p50_ms']:.1f} vs "
            f"{c['variant_service_p50_ms']:.1f} ms"
        )
    return text


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
    e = effect(c["gain_lo_ms"], c["gain_hi_ms"])
    verdict = CONFIRMED if e == "lower" else REFUTED
    why = {
        "lower": f"{what} lowers the median by {c['gain_ms']:.1f} ms; the interval excludes 0",
        "higher": f"{what} raises the median by {-c['gain_ms']:.1f} ms",
        "no detectable difference": f"{what} makes no detectable difference (interval spans 0)",
    }[e]
    return _v(verdict, _fmt_ci(c), why, **c)


def claim_hop_counts(run: Run) -> Verdict:
    """Confirmed when the counted traversals are within 2-3 (gateway) and 5-6 (realtime)."""
    hc = hop_counts(run)
    if hc.empty or not {"gateway", "realtime"} <= set(hc["arch"]):
        return _v(NOT_TESTED, "", "the run lacks fully stamped gateway and realtime messages")
    parts = [
        f"{r['arch']}{'/' + str(r['publish']) if r['publish'] else ''}: {r['traversals']} "
        f"({r['network_hops']} one-way legs + {r['http_exchanges']} HTTP responses)"
        for r in hc.to_dict("records")
    ]
    ok = bool(hc[hc["arch"].isin(["gateway", "realtime"])]["within_claim"].all())
    why = (
        "counted hops fall in the claimed ranges"
        if ok
        else "some counted hop numbers fall outside the claimed ranges"
    )
    return _v(CONFIRMED if ok else REFUTED, "; ".join(parts), why,
              counts=hc.to_dict("records"))  # fmt: skip


def _range(run: Run, filters: list[dict[str, Any]], lo: float, hi: float, name: str) -> Verdict:
    cell = baseline_cell(run, filters)
    if cell is None:
        return _v(NOT_TESTED, "", f"the run has no {name} cell with replies")
    v = values(run, cell)
    p50, p90 = float(np.percentile(v, 50)), float(np.percentile(v, 90))
    ok = lo <= p50 <= hi and p90 <= hi
    ev = f"{cell}: p50 {p50:.1f} ms, p90 {p90:.1f} ms (n={len(v)}); claimed {lo:g}-{hi:g} ms"
    if ok:
        why = "median inside the range and p90 not above it"
    elif p50 < lo:
        why = "median below the claimed range"
    elif p50 > hi:
        why = "median above the claimed range"
    else:
        why = "p90 above the claimed range"
    return _v(CONFIRMED if ok else REFUTED, ev, why, cell=cell, p50_ms=p50, p90_ms=p90, n=len(v))


def claim_gateway_range(run: Run) -> Verdict:
    return _range(run, GATEWAY_BASELINES, 50, 200, "gateway")


def claim_realtime_range(run: Run) -> Verdict:
    return _range(run, REALTIME_BASELINES, 100, 300, "realtime")


def claim_gateway_lower(run: Run) -> Verdict:
    return _lowers(run, REALTIME_BASELINES, {"arch": "gateway"}, "the gateway path",
                   ignore=("publish", "webhook_mode"))  # fmt: skip


def _cell_means(run: Run, cell: str) -> pd.Series | None:
    per = decompose_messages(run)
    d = per[per["cell"] == cell]
    if d.empty:
        return None
    return d[["network_ms", "llm_ms", "processing_ms", "http_ms", "total_ms"]].mean()


def claim_http_bottleneck(run: Run) -> Verdict:
    """Confirmed when the HTTP legs (webhook POST, HTTP publish) take at least half of the
    realtime path's time outside the LLM (network + processing), means over messages."""
    http_publish = [f for f in REALTIME_BASELINES if str(f.get("publish", "")).startswith("http")]
    cell = baseline_cell(run, http_publish)
    means = _cell_means(run, cell) if cell else None
    if cell is None or means is None:
        return _v(NOT_TESTED, "", "the run has no stamped realtime cell with HTTP publish")
    non_llm = means["network_ms"] + means["processing_ms"]
    share = means["http_ms"] / non_llm if non_llm > 0 else np.nan
    ok = bool(share >= 0.5)
    ev = (
        f"{cell}: HTTP legs {means['http_ms']:.1f} ms of {non_llm:.1f} ms outside the LLM "
        f"({100 * share:.1f}%); LLM {means['llm_ms']:.1f} ms; total {means['total_ms']:.1f} ms"
    )
    why = (
        "the HTTP legs are most of the non-LLM time"
        if ok
        else "the HTTP legs are less than half of the non-LLM time"
    )
    return _v(CONFIRMED if ok else REFUTED, ev, why, cell=cell, http_share=share,
              **{str(k): float(v) for k, v in means.items()})  # fmt: skip


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
    """Confirmed when, on the gateway path, the LLM takes more time than the network and more
    than the rest of the processing (means over messages)."""
    cell = baseline_cell(run, GATEWAY_BASELINES)
    means = _cell_means(run, cell) if cell else None
    if cell is None or means is None:
        return _v(NOT_TESTED, "", "the run has no stamped gateway cell")
    ok = bool(means["llm_ms"] > means["network_ms"] and means["llm_ms"] > means["processing_ms"])
    ev = (
        f"{cell}: LLM {means['llm_ms']:.1f} ms, network {means['network_ms']:.1f} ms, "
        f"processing {means['processing_ms']:.1f} ms of {means['total_ms']:.1f} ms"
    )
    why = "the LLM is the largest part" if ok else "the LLM is not the largest part"
    return _v(CONFIRMED if ok else REFUTED, ev, why, cell=cell,
              **{str(k): float(v) for k, v in means.items()})  # fmt: skip


def claim_hybrid_keeps_gateway(run: Run) -> Verdict:
    """Confirmed when, at the upper end of its interval, hybrid's median time outside the LLM
    exceeds gateway's by at most max(5 ms, 10 % of the gateway's median service time)."""
    pair = find_pair(run, [{"arch": "gateway"}], {"arch": "hybrid"})
    if pair is None:
        return _v(NOT_TESTED, "", "the run has no hybrid cell paired with a gateway cell")
    c = compare_cells(run, pair[0], pair[1], base_metric=OVERHEAD)
    # the margin is a share of the latency the user sees (the gateway's median service time)
    margin = max(HYBRID_MARGIN_MS, HYBRID_MARGIN_FRAC * c["base_service_p50_ms"])
    slower_hi = -c["gain_lo_ms"]  # upper end of (hybrid - gateway)
    ok = slower_hi <= margin
    if slower_hi <= 0:
        why = f"hybrid is not slower (at least {-slower_hi:.1f} ms faster)"
    elif ok:
        why = f"hybrid is at most {slower_hi:.1f} ms slower (margin {margin:.1f} ms)"
    else:
        why = f"hybrid may be up to {slower_hi:.1f} ms slower (margin {margin:.1f} ms)"
    return _v(CONFIRMED if ok else REFUTED, _fmt_ci(c), why, margin_ms=margin, **c)


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


def claims_table(run: Run) -> pd.DataFrame:
    """One row per claim: id, claim, verdict, evidence (the numbers), rationale, numbers (dict)."""
    rows = []
    for cid, text, fn in CLAIMS:
        try:
            v = fn(run)
        except Exception as err:  # one broken claim must not hide the others
            v = _v(NOT_TESTED, "", f"could not be evaluated: {type(err).__name__}: {err}")
        rows.append({"id": cid, "claim": text, **v})
    return pd.DataFrame(rows, columns=["id", "claim", "verdict", "evidence", "rationale",
                                       "numbers"])  # fmt: skip
