"""The reference run and its rendered report, committed under data/reference/ so that a reader
of the repository sees the findings before running anything.

``python -m travelagent.analysis.reference [RUN REPORT]`` (``make reference``, after
``make report``; without arguments, the newest run and its report) replaces data/reference/
with the run's records (run.json, the two Parquet files, each cell's small files; not the
topology logs or SQLite files) and the report's pages and tables (index.html, the notebook
pages, claims.csv, stability.csv, model.csv). The executed notebooks stay out: each page links
to its source notebook in notebooks/ instead, which keeps the report under 5 MB.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from travelagent.analysis.load import project_root

CELL_FILES = (
    "links.json", "selfcheck.json", "locust_stats.csv", "locust_failures.csv",
    "latency-corrected.hlog", "latency-uncorrected.hlog",
)  # fmt: skip
REPORT_GLOBS = ("index.html", "0*.html", "claims.csv", "stability.csv", "model.csv")


def reference_dir() -> Path:
    return project_root() / "data" / "reference"


def copy_run(run: Path, dest: Path) -> Path:
    """The run's records without its bulky by-products, into ``dest/<run-id>/``."""
    out = dest / run.name
    out.mkdir(parents=True)
    for name in ("run.json", "messages.parquet", "stamps.parquet"):
        shutil.copy2(run / name, out / name)
    for cell in sorted((run / "cells").glob("*")):
        kept = [f for f in CELL_FILES if (cell / f).exists()]
        if kept:
            (out / "cells" / cell.name).mkdir(parents=True)
            for f in kept:
                shutil.copy2(cell / f, out / "cells" / cell.name / f)
    return out


def copy_report(report: Path, dest: Path) -> Path:
    """The report's pages into ``dest/report/``; links to executed notebooks point at the
    notebooks' sources in the repository instead."""
    out = dest / "report"
    out.mkdir(parents=True)
    for pattern in REPORT_GLOBS:
        for f in sorted(report.glob(pattern)):
            text = f.read_text()
            if f.suffix == ".html":
                text = re.sub(r'href="(\d\d_[\w]+\.ipynb)"', r'href="../../../notebooks/\1"', text)
            (out / f.name).write_text(text)
    return out


def publish(run: Path, report: Path, dest: Path | None = None) -> Path:
    """Replace ``dest`` (data/reference/) with the run and its report. Built beside it first and
    swapped in at the end, so a run that already lives in ``dest`` is read before it goes, and
    a failure leaves the old reference whole."""
    import tempfile

    dest = (dest or reference_dir()).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".reference-", dir=dest.parent))
    try:
        copy_run(run, staging)
        copy_report(report, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest / "report"


def main(argv: list[str]) -> int:
    from travelagent.analysis.load import latest_run

    if len(argv) not in (0, 2):
        print("usage: python -m travelagent.analysis.reference [RUN_DIR REPORT_DIR]",
              file=sys.stderr)  # fmt: skip
        return 2
    if argv:
        run, report = Path(argv[0]), Path(argv[1])
    else:  # the newest run and its report (what `make report` just made)
        newest = latest_run()
        if newest is None:
            print("reference: no run in data/runs/; run `make report` first", file=sys.stderr)
            return 2
        run, report = newest, project_root() / "data" / "reports" / newest.name
    if not (run / "run.json").exists() or not (report / "index.html").exists():
        print(f"reference: {run} is not a run or {report} has no index.html", file=sys.stderr)
        return 2
    out = publish(run, report)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"reference: {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
