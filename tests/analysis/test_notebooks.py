"""Every notebook runs top to bottom with papermill against a small synthetic run that lacks
some cells; the same code also runs (in-process, no kernel) against a run where no message got
a reply, where the notebooks must say what is missing rather than fail."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import nbformat
import pytest

from travelagent.analysis.synth import SynthCell, standard_cells, write_synthetic_run

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # most of the matrix, but no hybrid, no persistent socket, a single webhook mode
    cells = [c for c in standard_cells(n=40) if c.cell not in ("hybrid", "rt-ws",
                                                               "rt-http-new-ack")]  # fmt: skip
    return write_synthetic_run(tmp_path_factory.mktemp("runs"), cells, run_id="partial")


def _outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells for o in c.get("outputs", [])
            if mime in o.get("data", {})]  # fmt: skip


def in_step(ipynb: Path) -> bool:
    """The notebook holds the same cells, in order, as its percent-format source beside it
    (outputs, ids, metadata and JSON layout may differ: Jupyter rewrites those on save)."""
    import jupytext

    source = jupytext.read(ipynb.with_suffix(".py"))
    return _cells(nbformat.read(str(ipynb), as_version=4)) == _cells(source)


def test_every_notebook_is_in_step_with_its_source_and_takes_the_run_path() -> None:
    assert len(NOTEBOOKS) >= 5
    for name in NOTEBOOKS:
        path = NOTEBOOK_DIR / name
        assert in_step(path), f"{name} differs from {path.stem}.py: run `make notebooks`"
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "run_path = None" in tagged[0].source


def test_a_notebook_saved_by_jupyter_after_a_run_is_still_in_step(tmp_path: Path) -> None:
    import shutil

    src = NOTEBOOK_DIR / NOTEBOOKS[0]
    shutil.copy(src.with_suffix(".py"), tmp_path / f"{src.stem}.py")
    nb = nbformat.read(str(src), as_version=4)
    for i, c in enumerate(nb.cells):  # what running and saving in JupyterLab changes
        c["id"] = f"lab-{i}"
        if c.cell_type == "code":
            c["execution_count"] = i
            c["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text="out\n")]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    nbformat.write(nb, str(tmp_path / src.name))
    assert in_step(tmp_path / src.name)
    nb.cells[2].source += "\nprint('edited')"
    nbformat.write(nb, str(tmp_path / src.name))
    assert not in_step(tmp_path / src.name)


def _papermill(name: str, run: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # papermill in its own process: a cell error makes it exit non-zero with the error shown,
    # and two notebooks execute at once (a kernel start is mostly waiting on imports)
    return subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOK_DIR / name), str(out),
         "-p", "run_path", str(run), "-k", "python3", "--no-progress-bar",
         "--execution-timeout", "60"],
        capture_output=True, text=True, timeout=180, check=False, cwd=NOTEBOOK_DIR,
    )  # fmt: skip


@pytest.mark.slow
def test_every_notebook_runs_top_to_bottom(partial_run: Path, tmp_path: Path) -> None:
    names = sorted(NOTEBOOKS)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda n: _papermill(n, partial_run, tmp_path / n), names))
    failed = {n: r.stderr[-3000:] for n, r in zip(names, results, strict=True) if r.returncode}
    assert not failed, "\n\n".join(f"{n} failed:\n{err}" for n, err in failed.items())
    for name in names:
        nb = nbformat.read(str(tmp_path / name), as_version=4)
        markdown = " ".join(_outputs(nb, "text/markdown"))
        assert "`partial`" in markdown  # the run it was given, not the newest one around
        if name == "07_saturation.ipynb":  # no path at three or more rates in this run
            assert "Not in this run" in markdown
        elif name != "05_claims.ipynb":
            assert _outputs(nb, "image/png"), f"{name}: expected figures"
        if name == "03_optimizations.ipynb":
            assert "Not in this run" in markdown  # no hybrid, socket or second webhook mode


def test_notebook_code_says_what_is_missing_in_a_run_without_replies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matplotlib.use("Agg")
    run = write_synthetic_run(tmp_path, [SynthCell("g", "gateway", n=5, fail_every=1)])
    for name in NOTEBOOKS:
        nb = nbformat.read(str(NOTEBOOK_DIR / name), as_version=4)
        ns: dict[str, object] = {}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            src = "\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("%"))
            if "parameters" in cell.metadata.get("tags", []):
                src = f"run_path = {str(run)!r}"
            exec(compile(src, f"{name}", "exec"), ns)
    import matplotlib.pyplot as plt

    plt.close("all")
    printed = capsys.readouterr().out
    assert "No ok messages in this run" in printed
    assert "Not in this run" in printed
