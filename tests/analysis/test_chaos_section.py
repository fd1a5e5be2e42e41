"""The report's Faults section from a run's chaos.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from travelagent.analysis.chaos import faults_html
from travelagent.runner.count import COLUMNS, count_fault


def _write(run_dir: Path, rows: list[dict[str, object]]) -> None:
    with open(run_dir / "chaos.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)


def test_no_chaos_csv_no_section(tmp_path: Path) -> None:
    assert faults_html(tmp_path) == ""


def test_rows_with_losses_or_duplicates_are_marked_and_counted(tmp_path: Path) -> None:
    S = 1_000_000_000
    clean = count_fault("none", "gateway", [
        {"msg_id": "a", "status": "ok", "error": "", "send_ns": 2 * S, "recv_ns": 3 * S},
    ], injected_ns=1 * S)  # fmt: skip
    lossy = count_fault("worker-kill", "rt-ws", [
        {"msg_id": "b", "status": "lost", "error": "<closed> & gone", "send_ns": S,
         "recv_ns": None},
        {"msg_id": "c", "status": "error", "error": "agent error", "send_ns": S, "recv_ns": None},
    ], injected_ns=0, finals={"c": 2})  # fmt: skip
    _write(tmp_path, [clean.row(), lossy.row()])
    page = faults_html(tmp_path)
    assert "<h2>Faults</h2>" in page and 'href="chaos.csv"' in page
    assert "1 of 2 rows lost or duplicated" in page
    assert page.count('class="bad"') == 2  # lost 1 and duplicated 1 of the second row
    assert "&lt;closed&gt; &amp; gone" in page and "<closed>" not in page
    assert "<td>2.00</td>" in page and "<td>none</td>" in page  # recovery, and none for no ok


def test_all_clean_says_so(tmp_path: Path) -> None:
    row = count_fault("none", "gateway", [], injected_ns=0).row()
    _write(tmp_path, [row])
    assert "No row lost or duplicated a message (1 rows)." in faults_html(tmp_path)
