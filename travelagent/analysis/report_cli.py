"""``travelagent report [RUN] [--out DIR] [--timeout-s N] [--jobs N]``: the notebooks as an
HTML report.

Light at import time (the CLI builds every verb's parser); pandas, papermill and nbconvert are
imported inside ``main``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="run directory (default: the newest run in data/runs/)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="output directory (default: data/reports/<run-id>/)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=600.0,
        metavar="N",
        help="per-cell execution timeout in seconds (default 600)",
    )
    parser.add_argument(
        "--notebooks", metavar="DIR", help="notebooks to execute (default: notebooks/)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="notebooks executed at once (default 2)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from travelagent.analysis.load import RunError, latest_run
    from travelagent.analysis.report import build_report

    if args.timeout_s is not None and args.timeout_s <= 0:
        print("travelagent report: --timeout-s must be positive", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("travelagent report: --jobs must be at least 1", file=sys.stderr)
        return 2
    run_path = Path(args.run) if args.run else latest_run()
    if run_path is None:
        print(
            "travelagent report: no run given and none found in data/runs/ "
            "(run `travelagent run EXPERIMENT` first, or pass a run directory)",
            file=sys.stderr,
        )
        return 2
    try:
        report = build_report(
            run_path,
            args.out,
            notebooks_dir=args.notebooks,
            timeout_s=args.timeout_s,
            progress=not args.no_progress,
            workers=args.jobs,
        )
    except (RunError, FileNotFoundError) as err:
        print(f"travelagent report: {err}", file=sys.stderr)
        return 2
    for nb in report.notebooks:
        if not nb.ok:
            print(f"travelagent report: {nb.name} failed:\n{nb.error}", file=sys.stderr)
    print(report.index)
    return 0 if report.ok else 1
