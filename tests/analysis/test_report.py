"""The report over a synthetic run: every notebook executed and rendered, the index with the
claims table on top, and a failing notebook reported (non-zero exit) without stopping the rest.
Small stand-in notebooks keep it fast; tests/test_notebooks.py executes the real ones."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from travelagent.analysis.synth import standard_cells, write_synthetic_run
from travelagent.cli import main


def _notebook(path: Path, code: str) -> None:
    nb = new_notebook()
    params = new_code_cell("run_path = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("runs"), standard_cells(n=30))


@pytest.mark.slow
def test_report_renders_every_notebook_and_exits_non_zero_on_a_failing_one(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_good.ipynb",
              "from travelagent.analysis.load import load_run\n"
              "print('messages:', len(load_run(run_path).messages))")  # fmt: skip
    _notebook(nbs / "02_bad.ipynb", "raise ValueError('deliberate failure')")
    _notebook(nbs / "03_after.ipynb", "print('still executed')")
    out = tmp_path / "report"
    rc = main(["report", str(run), "--out", str(out), "--notebooks", str(nbs), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "02_bad.ipynb failed" in captured.err and "deliberate failure" in captured.err
    assert captured.out.strip() == str(out / "index.html")
    index = (out / "index.html").read_text()
    # the claims table comes first, then the notebooks, then the run
    assert index.index('id="claims"') < index.index("Notebooks") < index.index("run.json")
    assert index.count("confirmed") >= 10
    for name in ("01_good", "02_bad", "03_after"):
        assert f'href="{name}.html"' in index
        assert (out / f"{name}.html").exists()
    assert "messages: 270" in (out / "01_good.html").read_text()
    assert "still executed" in (out / "03_after.html").read_text()
    assert "deliberate failure" in (out / "02_bad.html").read_text()


def test_report_of_a_directory_that_is_not_a_run_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_report_without_notebooks_is_a_clear_error(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["report", str(run), "--out", str(tmp_path), "--notebooks", str(tmp_path)])
    assert rc == 2
    assert "no notebooks" in capsys.readouterr().err


def test_report_rejects_a_non_positive_timeout_or_job_count(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run), "--timeout-s", "0"]) == 2
    assert "--timeout-s" in capsys.readouterr().err
    assert main(["report", str(run), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
