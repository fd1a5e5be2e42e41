"""``python -m travelagent.bench [--quick] [--only SECTIONS] [--out DIR]`` (``make bench``).

Writes ``bench.json`` (settings, every trial, every figure with its target and verdict, versions,
host, commit) and ``table.txt`` into ``data/runs/<id>-bench/`` and prints the table. There is no
``run.json`` in it on purpose: the run loaders take a directory with one for a load-test run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from travelagent.bench.idle import raise_nofile_limit
from travelagent.bench.report import build_rows
from travelagent.bench.suite import FULL, QUICK, SECTIONS, log, run
from travelagent.bench.table import render
from travelagent.client.runinfo import git_commit, host_info, iso_now, new_run_id, package_versions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m travelagent.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one round of short trials")
    every = ",".join(SECTIONS)
    p.add_argument("--only", default=every, help=f"comma-separated sections (default {every})")
    p.add_argument("--no-peer", action="store_true", help="skip the wrangler dev peer")
    p.add_argument("--out", type=Path, default=Path("data/runs"), help="where the run goes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = tuple(s for s in args.only.split(",") if s)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    settings = QUICK if args.quick else FULL
    if args.no_peer:
        settings = dataclasses.replace(settings, peer=False)
    run_dir = (args.out / f"{new_run_id()}-bench").resolve()
    run_dir.mkdir(parents=True)
    # Children (the servers) inherit the limit: 10,000 sockets need more than the usual 1,024.
    nofile = raise_nofile_limit()
    started, t0 = iso_now(), time.perf_counter()
    log(f"bench: {'quick' if args.quick else 'full'} run into {run_dir} (open files {nofile})")
    results = run(settings, run_dir, sections)
    wall_s = time.perf_counter() - t0
    rows = build_rows(results)
    skipped = [(str(what), str(why)) for what, why in results.pop("skipped", [])]
    doc = {
        "run_id": run_dir.name, "kind": "bench", "quick": args.quick, "sections": sections,
        "started": started, "ended": iso_now(), "wall_s": wall_s, "settings": asdict(settings),
        "versions": package_versions(), "host": host_info(), "git_commit": git_commit(),
        "command": sys.argv, "results": results, "figures": [r.to_dict() for r in rows],
        "skipped": [{"what": w, "why": y} for w, y in skipped],
    }  # fmt: skip
    (run_dir / "bench.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    table = render(rows, rounds=settings.rounds, skipped=skipped, notes=results.get("notes", []))
    (run_dir / "table.txt").write_text(table + "\n")
    print(table)
    print(f"\nwall time {wall_s:.0f} s; results in {run_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
