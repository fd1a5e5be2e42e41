"""A cell the self-check flagged runs again; its flagged attempts are kept, out of the run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from travelagent.analysis.load import load_run
from travelagent.analysis.report import _flagged_html
from travelagent.analysis.synth import SynthCell, write_synthetic_run
from travelagent.client.records import finalize_run
from travelagent.runner import run as runner
from travelagent.runner.experiment import Cell, parse_experiment

FLAG = "link client_worker up releases late: p99 9.00 ms > 5 ms"


def _experiment(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": "x",
        "durations_s": [3],
        "scenarios": [
            {"name": name, "preset": "loopback", "arch": "gateway"}
            for name in ("once", "always", "never")
        ],
        "shapes": [{"name": "u1", "kind": "constant", "users": 1}],
    }
    data.update(changes)
    return parse_experiment(data)


class FakeCells:
    """Stands in for ``run_cell``: files 5 messages per attempt (new ids each time), as the real
    one does, and flags per scenario: "once" on its first attempt, "always" on every one."""

    def __init__(self, tmp: Path, sleep_s: float = 0.0) -> None:
        self.tmp, self.sleep_s = tmp, sleep_s
        self.attempts: dict[str, int] = {}
        self.ids: dict[str, list[str]] = {}

    def __call__(self, cell: Cell, run_dir: Path, run_id: str) -> dict[str, Any]:
        k = self.attempts[cell.name] = self.attempts.get(cell.name, 0) + 1
        time.sleep(self.sleep_s)
        src = write_synthetic_run(self.tmp / f"{cell.name}-{k}", [SynthCell(cell.name, "gateway",
                                  n=5)], run_id=run_id, seed=k)  # fmt: skip
        parts = run_dir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        for name in ("messages", "stamps"):
            shutil.copy(src / f"{name}.parquet", parts / f"{name}-cell-{cell.name}.parquet")
        finalize_run(run_dir)
        self.ids[cell.name] = pq.read_table(src / "messages.parquet").column("msg_id").to_pylist()
        cell_dir = run_dir / "cells" / cell.name
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "attempt.txt").write_text(str(k))
        entry = cell.entry.name
        flagged = (entry == "once" and k == 1) or entry == "always"
        return {"cell": cell.name, "status": "ok", "error": "", "messages": 5,
                "started": f"t{k}", "ended": f"t{k}e",
                "selfcheck": {"flagged": flagged, "flags": [FLAG] if flagged else []}}  # fmt: skip


def test_a_flagged_cell_runs_again_and_keeps_its_earlier_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeCells(tmp_path / "src")
    monkeypatch.setattr(runner, "run_cell", fake)
    run_dir = tmp_path / "run"
    told: list[tuple[str, int]] = []
    status = runner.run_experiment(_experiment(retry_flagged=2), run_dir,
                                   again=lambda c, info, k: told.append((c.name, k)))  # fmt: skip
    assert status == "ok"
    assert fake.attempts == {"once-u1-3s": 2, "always-u1-3s": 3, "never-u1-3s": 1}
    assert told == [("once-u1-3s", 1), ("always-u1-3s", 1), ("always-u1-3s", 2)]
    meta = json.loads((run_dir / "run.json").read_text())
    cells = {c["cell"]: c for c in meta["cells"]}
    assert [a["attempt"] for a in cells["always-u1-3s"]["attempts"]] == [1, 2]
    assert cells["once-u1-3s"]["attempts"] == [{
        "attempt": 1, "dir": "attempts/once-u1-3s/a1", "flags": [FLAG], "messages": 5,
        "started": "t1", "ended": "t1e"}]  # fmt: skip
    assert (
        "attempts" not in cells["never-u1-3s"] and not cells["once-u1-3s"]["selfcheck"]["flagged"]
    )
    # the run holds each cell's last attempt only, every message once
    msgs = pq.read_table(run_dir / "messages.parquet").to_pandas()
    assert msgs.groupby("cell").size().to_dict() == {c: 5 for c in fake.attempts}
    for cell, ids in fake.ids.items():
        assert sorted(msgs[msgs["cell"] == cell]["msg_id"]) == sorted(ids)
    stamps = pq.read_table(run_dir / "stamps.parquet").to_pandas()
    assert set(stamps["msg_id"]) == set(msgs["msg_id"])
    # the set-aside attempts: their directory and their own records, nothing lost
    a1 = run_dir / "attempts" / "once-u1-3s" / "a1"
    assert (a1 / "cell" / "attempt.txt").read_text() == "1"
    assert (run_dir / "cells" / "once-u1-3s" / "attempt.txt").read_text() == "2"
    old = pq.read_table(a1 / "messages.parquet").to_pandas()
    assert len(old) == 5 and not set(old["msg_id"]) & set(msgs["msg_id"])
    assert set(pq.read_table(a1 / "stamps.parquet").to_pandas()["msg_id"]) == set(old["msg_id"])
    # and the analysis reads the run as any other
    run = load_run(run_dir)
    assert sorted(run.cells["cell"]) == sorted(fake.attempts)
    by = run.cells.set_index("cell")
    assert by["flagged"].to_dict()["always-u1-3s"]
    assert by["attempts"].to_dict() == {"once-u1-3s": 1, "always-u1-3s": 2, "never-u1-3s": 0}
    html = _flagged_html(run)  # the report says which cells ran again and why
    assert "2 cell(s) were flagged, set aside and run again" in html
    assert "1 of them passed the self-check" in html and "releases late" in html


def test_no_re_run_starts_once_the_budget_is_spent_and_none_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeCells(tmp_path / "src", sleep_s=0.05)
    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_experiment(_experiment(retry_flagged=3, retry_budget_s=0.01), tmp_path / "a")
    # the first re-run spends the budget: no other re-run starts, in this cell or the next
    assert fake.attempts == {"once-u1-3s": 2, "always-u1-3s": 1, "never-u1-3s": 1}
    assert json.loads((tmp_path / "a" / "run.json").read_text())["retry_s"] >= 0.05
    fake = FakeCells(tmp_path / "src2")
    monkeypatch.setattr(runner, "run_cell", fake)
    runner.run_experiment(_experiment(), tmp_path / "b")
    assert set(fake.attempts.values()) == {1}
    assert not (tmp_path / "b" / "attempts").exists()
