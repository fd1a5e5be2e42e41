"""``travelagent agree RUN_A RUN_B``: whether two runs of one experiment tell the same story.

Prints each claim's verdict from both runs and each configuration's p50 of the time outside the
LLM with their difference; writes both tables as CSV with ``--out DIR``. Exit status 0 when every
verdict agrees and the median difference is within ``--tolerance-pct``, 1 when not, 2 on bad
input. Light at import time; pandas is imported inside ``main``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_TOLERANCE_PCT = 2.0  # kept in step with travelagent.analysis.agreement


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="a run directory")
    parser.add_argument("run_b", metavar="RUN_B", help="another run of the same experiment")
    parser.add_argument(
        "--tolerance-pct",
        type=float,
        default=DEFAULT_TOLERANCE_PCT,
        metavar="P",
        help="largest median difference of the p50s, in percent, that still agrees "
        f"(default {DEFAULT_TOLERANCE_PCT:g})",
    )
    parser.add_argument("--out", metavar="DIR", help="also write verdicts.csv and p50.csv into DIR")


def main(args: argparse.Namespace) -> int:
    if not args.tolerance_pct >= 0:
        print("travelagent agree: --tolerance-pct must be 0 or more", file=sys.stderr)
        return 2
    from travelagent.analysis.agreement import compare_runs, render
    from travelagent.analysis.load import RunError, load_run

    try:
        a, b = load_run(args.run_a), load_run(args.run_b)
    except RunError as err:
        print(f"travelagent agree: {err}", file=sys.stderr)
        return 2
    result = compare_runs(a, b, tolerance_pct=args.tolerance_pct)
    if result.p50.empty:
        print("travelagent agree: the two runs have no configuration in common", file=sys.stderr)
        return 2
    print(render(result, a.run_id, b.run_id))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.verdicts.to_csv(out / "verdicts.csv", index=False)
        result.p50.to_csv(out / "p50.csv", index=False)
    return 0 if result.agree else 1
