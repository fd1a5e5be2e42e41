"""``travelagent run EXPERIMENT``: topology + Locust headless for every cell of an experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from travelagent.runner.experiment import Cell


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment",
        metavar="EXPERIMENT",
        help="an experiment file, or a name under loadtests/experiments/ (e.g. default, tiny)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="the run directory (default: data/runs/<new run id>)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the experiment and print its cells and Locust commands; start nothing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from travelagent.client.runinfo import new_run_id
    from travelagent.runner.chaos import is_chaos
    from travelagent.runner.experiment import ExperimentError, experiment_path, load_experiment
    from travelagent.runner.run import locust_command, run_experiment

    if is_chaos(experiment_path(args.experiment)):
        return run_chaos_main(args)
    try:
        experiment = load_experiment(args.experiment)
    except ExperimentError as err:
        print(f"travelagent run: {err}", file=sys.stderr)
        return 2
    cells = experiment.cells()
    run_dir = Path(args.out) if args.out else Path("data/runs") / new_run_id(f"{experiment.name}-")
    est_s = sum(c.duration_s + 5 for c in cells)
    if args.dry_run:
        print(f"experiment {experiment.name}: {len(cells)} cells, about {est_s / 60:.1f} min")
        urls = {"gateway": "<gateway-url>", "realtime": "<realtime-url>"}
        for cell in cells:
            cmd = locust_command(cell, urls=urls, cell_dir=run_dir / "cells" / cell.name,
                                 run_id=run_dir.name)  # fmt: skip
            print(f"\n[{cell.name}] {cell.entry.arch} publish={cell.entry.publish or '-'} "
                  f"stream={cell.entry.streaming} users={cell.shape.peak_users} "
                  f"{cell.duration_s:g}s\n  " + " ".join(cmd[1:]))  # fmt: skip
        return 0
    if run_dir.exists() and any(run_dir.iterdir()):
        print(f"travelagent run: {run_dir} exists and is not empty", file=sys.stderr)
        return 2

    from tqdm import tqdm

    bar = tqdm(total=len(cells), unit="cell", disable=args.no_progress, file=sys.stderr)

    def progress(cell: Cell, i: int, n: int) -> None:
        bar.set_description(cell.name)

    def done(cell: Cell, info: dict[str, Any]) -> None:
        bar.update(1)
        if info["status"] != "ok":
            bar.write(f"cell {cell.name}: {info['status']}: {info['error']}")

    def again(cell: Cell, info: dict[str, Any], k: int) -> None:
        flags = (info.get("selfcheck") or {}).get("flags") or []
        bar.write(f"cell {cell.name}: flagged by the self-check ({flags[0] if flags else '?'}"
                  f"{f' and {len(flags) - 1} more' if len(flags) > 1 else ''}); running it "
                  f"again ({k} of {experiment.retry_flagged}), the attempt kept under "
                  f"attempts/")  # fmt: skip

    print(f"travelagent run: {experiment.name}, {len(cells)} cells into {run_dir}", file=sys.stderr)
    status = run_experiment(experiment, run_dir, progress=progress, done=done, again=again)
    bar.close()
    print(f"travelagent run: {status}; {run_dir}", file=sys.stderr)
    print(run_dir)
    return {"ok": 0, "failed": 1, "interrupted": 130}.get(status, 1)


def run_chaos_main(args: argparse.Namespace) -> int:
    """``kind = "chaos"``: faults under load, counted into chaos.csv (runner/chaos.py)."""
    from travelagent.client.runinfo import new_run_id
    from travelagent.runner.chaos import ChaosPath, Fault, load_chaos, print_table, run_chaos
    from travelagent.runner.experiment import ExperimentError, experiment_path

    try:
        exp = load_chaos(experiment_path(args.experiment))
    except ExperimentError as err:
        print(f"travelagent run: {err}", file=sys.stderr)
        return 2
    run_dir = Path(args.out) if args.out else Path("data/runs") / new_run_id(f"{exp.name}-")
    phases = sum(len(exp.plan(p)) for p in exp.paths)
    if args.dry_run:
        print(f"chaos experiment {exp.name}: {len(exp.paths)} paths, {phases} phases, "
              f"about {exp.estimate_s() / 60:.1f} min")  # fmt: skip
        for path in exp.paths:
            names = ", ".join(f.name for f in exp.plan(path))
            print(f"  [{path.name}] {path.arch} publish={path.publish or '-'} "
                  f"webhook={path.scenario.worker.webhook_mode}: {names}")  # fmt: skip
        return 0
    if run_dir.exists() and any(run_dir.iterdir()):
        print(f"travelagent run: {run_dir} exists and is not empty", file=sys.stderr)
        return 2
    print(f"travelagent run: chaos {exp.name}, {len(exp.paths)} paths, {phases} phases "
          f"(about {exp.estimate_s() / 60:.1f} min) into {run_dir}", file=sys.stderr)  # fmt: skip

    def progress(path: ChaosPath, fault: Fault) -> None:
        if not args.no_progress:
            print(f"  {path.name}: {fault.name}", file=sys.stderr)

    status = run_chaos(exp, run_dir, progress=progress)
    import csv

    with open(run_dir / "chaos.csv", newline="") as fh:
        print(print_table(list(csv.DictReader(fh))), file=sys.stderr)
    print(f"travelagent run: {status}; {run_dir}", file=sys.stderr)
    print(run_dir)
    return {"ok": 0, "failed": 1, "interrupted": 130}.get(status, 1)
