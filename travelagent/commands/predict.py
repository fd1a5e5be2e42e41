"""``travelagent predict [--client-rtt-ms N] [--service-rtt-ms N] [--llm PROFILE] [SCENARIO]``:
each path's predicted p50/p90 and first-content time under conditions nobody ran, from the
validated latency model (``analysis.latency_model``), with the error band measured on held-out
cells.

The fit comes from ``--fit FILE``, else from the newest report that wrote ``model_fit.json``
(its run's fit cells, its held-out cells' errors), else from the committed fit
(``data/model/fit.json``); the output says which. Light at import time.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

NOTE_PATHS = ("gateway", "rt-new", "rt-pooled", "rt-ws", "rt-new-stream", "hybrid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        nargs="?",
        default="note",
        metavar="SCENARIO",
        help="a scenario preset or file whose links and LLM profile are the base (default: note)",
    )
    parser.add_argument(
        "--client-rtt-ms", type=float, metavar="N", help="user <-> edge RTT (both client links)"
    )
    parser.add_argument(
        "--service-rtt-ms", type=float, metavar="N", help="worker <-> realtime service RTT"
    )
    parser.add_argument("--llm", metavar="PROFILE", help="LLM profile (default: the scenario's)")
    parser.add_argument("--fit", metavar="FILE", help="a model fit (model_fit.json) to use")
    parser.add_argument(
        "--path", action="append", metavar="PATH", help="only this path (repeatable)"
    )
    parser.add_argument(
        "--samples", type=int, default=4000, metavar="N", help="simulated messages per path"
    )


def _fail(msg: str) -> int:
    print(f"travelagent predict: {msg}", file=sys.stderr)
    return 2


def find_fit(explicit: str | None) -> tuple[Path | None, str]:
    """The fit file to use and a sentence saying where it came from."""
    from travelagent.analysis.load import project_root

    if explicit:
        return Path(explicit), f"the fit given with --fit ({explicit})"
    reports = project_root() / "data" / "reports"
    found = sorted(reports.glob("*/model_fit.json"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1], f"the newest report's fit ({found[-1].parent.name})"
    committed = project_root() / "data" / "model" / "fit.json"
    if committed.exists():
        return committed, "the committed fit (data/model/fit.json)"
    return None, ""


def base_links(scenario: str) -> tuple[dict[str, dict[str, Any]], str]:
    from travelagent.runner.experiment import resolve_scenario

    sc = resolve_scenario(scenario, {})
    return {name: link.shape() for name, link in sc.links.items()}, str(sc.llm.profile)


def main(args: argparse.Namespace) -> int:
    from travelagent.agent.llm.profiles import PROFILES
    from travelagent.analysis.latency_model import PATHS, Fit, ModelError, predict
    from travelagent.runner.experiment import ExperimentError

    for flag in ("client_rtt_ms", "service_rtt_ms"):
        v = getattr(args, flag)
        if v is not None and (not math.isfinite(v) or v < 0):
            return _fail(f"--{flag.replace('_', '-')} must be a number >= 0, got {v}")
    if args.samples < 100:
        return _fail("--samples must be at least 100")
    if args.llm is not None and args.llm not in PROFILES:
        return _fail(f"unknown LLM profile {args.llm!r}; valid: {', '.join(PROFILES)}")
    paths = args.path or list(NOTE_PATHS)
    for p in paths:
        if p not in PATHS:
            return _fail(f"unknown path {p!r}; paths: {', '.join(PATHS)}")
    try:
        links, profile = base_links(args.scenario)
    except ExperimentError as err:
        return _fail(str(err))
    profile = args.llm or profile
    if profile not in PROFILES:
        return _fail(f"the scenario's LLM profile {profile!r} has no latency profile to model")
    for names, rtt in (
        (("client_worker", "client_realtime"), args.client_rtt_ms),
        (("realtime_worker", "worker_realtime"), args.service_rtt_ms),
    ):
        if rtt is not None:
            for n in names:
                links[n]["delay_ms"] = rtt / 2
    fit_path, fit_source = find_fit(args.fit)
    if fit_path is None:
        return _fail(
            "no model fit found: run `make study` (or `travelagent report` on a run) first, "
            "or pass --fit FILE"
        )
    try:
        fit = Fit.load(fit_path)
    except ModelError as err:
        return _fail(str(err))
    client_rtt = 2 * float(links["client_worker"].get("delay_ms") or 0)
    service_rtt = 2 * float(links["worker_realtime"].get("delay_ms") or 0)
    print(
        f"conditions: client RTT {client_rtt:g} ms, worker-realtime RTT {service_rtt:g} ms, "
        f"LLM {profile} (scenario {args.scenario})"
    )
    print(f"model: {fit_source}, fitted on {len(fit.cells)} cells of {fit.source or '?'}")
    rows = []
    for p in paths:
        try:
            pr = predict(fit, links, profile, p, n=args.samples)
        except ModelError as err:
            return _fail(str(err))
        band = fit.bands.get(p) or fit.bands.get("all")
        rows.append((p, pr, band))
    print(f"LLM timings: {rows[0][1].llm_source}")
    print(f"{'path':<15}{'p50 ms':>9}{'p90 ms':>9}{'first p50':>11}{'first p90':>11}   band")
    for p, pr, band in rows:
        if band and math.isfinite(band[0]):
            btxt = f"±{band[0]:.1f}% (worst |error| on {int(band[1])} {band[2]})"
        else:
            btxt = "no held-out check: unvalidated"
        print(f"{p:<15}{pr.p50_ms:9.1f}{pr.p90_ms:9.1f}{pr.first_p50_ms:11.1f}"
              f"{pr.first_p90_ms:11.1f}   {btxt}")  # fmt: skip
    print("band: the largest |predicted - measured| / measured p50 on cells kept out of the fit")
    return 0
