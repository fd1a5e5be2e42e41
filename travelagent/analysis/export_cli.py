"""``travelagent export [RUN] --format perfetto|otlp --out FILE``: a run's traces for Perfetto
(or chrome://tracing) and for OpenTelemetry tools (a collector, Jaeger, Tempo).

Light at import time; pandas is imported inside ``main``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# kept in step with travelagent.analysis.export (not imported here: it pulls in pandas)
FORMATS = ("perfetto", "otlp")
DEFAULT_LIMIT = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="run directory (default: the newest run in data/runs/, else data/reference/)",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="perfetto: Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing); "
        "otlp: OTLP/JSON spans (an OpenTelemetry collector's /v1/traces)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write ('-': stdout)")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N messages, spread over the cells (default {DEFAULT_LIMIT}; 0: all)",
    )
    parser.add_argument(
        "--cell",
        action="append",
        default=[],
        metavar="CELL",
        help="only this cell (repeat for several)",
    )


def main(args: argparse.Namespace) -> int:
    from travelagent.analysis.export import ExportError, export_run
    from travelagent.analysis.load import RunError, default_run_path, load_run

    if args.limit < 0:
        print("travelagent export: --limit must be 0 (all) or more", file=sys.stderr)
        return 2
    try:
        run = load_run(default_run_path(args.run))
        doc = export_run(run, args.format, limit=args.limit, cells=args.cell)
    except (RunError, ExportError) as err:
        print(f"travelagent export: {err}", file=sys.stderr)
        return 2
    text = json.dumps(doc, separators=(",", ":"))
    if args.out == "-":
        sys.stdout.write(text + "\n")
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    if args.format == "perfetto":
        n = doc["otherData"]["messages"]
        what = f"{n} messages; open it at https://ui.perfetto.dev or chrome://tracing"
    else:
        traces = {s["traceId"] for r in doc["resourceSpans"] for s in r["scopeSpans"][0]["spans"]}
        what = f"{len(traces)} traces; POST it to a collector's /v1/traces"
    print(f"{out} ({what}) from run {run.run_id}")
    return 0
