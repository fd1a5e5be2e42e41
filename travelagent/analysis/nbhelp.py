"""Small helpers that keep the notebooks thin: open the run, show a table or say it is missing,
pick the cells a picture is about."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from travelagent.analysis.load import RunError, default_run_path, load_run

if TYPE_CHECKING:
    from travelagent.analysis.load import Run


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebooks' dependencies
        return False
    return get_ipython() is not None


def note(text: str) -> None:
    """Show markdown in a notebook (plain text elsewhere)."""
    if not _in_notebook():
        print(text)
        return
    from IPython.display import Markdown, display

    display(Markdown(text))


def show(df: pd.DataFrame, empty: str = "Not in this run.", **fmt: Any) -> None:
    """Display ``df``, or say ``empty`` when it has no rows."""
    if df is None or df.empty:
        note(f"*{empty}*")
        return
    if not _in_notebook():
        print(df.to_string(na_rep="–"))
        return
    from IPython.display import display

    # "–" where a value does not exist (a knee not reached, an interval of one sample)
    styled = df.style.format(precision=fmt.get("precision", 1), na_rep="–")
    display(styled.hide(axis="index"))


def open_run(run_path: str | Path | None = None) -> Run:
    """Load the run (default: newest in data/runs/, else data/reference/) and describe it."""
    path = default_run_path(run_path)
    try:
        run = load_run(path)
    except RunError as err:
        raise RunError(
            f"{err}. Record a run first (`travelagent run EXPERIMENT` or `travelagent probe`), "
            "or set run_path to a run directory."
        ) from err
    m = run.meta
    note(
        f"**Run** `{run.run_id}` ({m.get('kind', '?')}, {m.get('status', '?')}), "
        f"started {m.get('started', '?')}, {len(run.cells)} cells, {len(run.messages)} messages "
        f"({len(run.ok())} ok), from `{path}`."
    )
    return run


def representative_cells(run: Run, *, streaming: bool | None = False) -> list[str]:
    """One cell per (arch, publish, webhook mode) at the lowest load: the pictures' subjects."""
    c = run.cells[run.cells["ok"] > 0].copy()
    if streaming is not None:
        c = c[c["streaming"] == streaming]
    if c.empty:
        return []
    c["_users"] = pd.to_numeric(c["users"], errors="coerce").fillna(float("inf"))
    c = c.sort_values(["arch", "publish", "webhook_mode", "_users"], kind="stable")
    return list(c.drop_duplicates(["arch", "publish", "webhook_mode"])["cell"])


def path_cells(run: Run) -> list[str]:
    """One cell per (arch, publish, webhook mode): unstreamed where the run has it, else
    streamed, at the lowest load. Lets the path comparison work on runs where some paths only
    ever stream."""
    c = run.cells[run.cells["ok"] > 0].copy()
    if c.empty:
        return []
    c["_users"] = pd.to_numeric(c["users"], errors="coerce").fillna(float("inf"))
    c = c.sort_values(["arch", "publish", "webhook_mode", "streaming", "_users"], kind="stable")
    return list(c.drop_duplicates(["arch", "publish", "webhook_mode"])["cell"])


def cells_where(run: Run, **filters: Any) -> list[str]:
    c = run.cells[run.cells["ok"] > 0]
    for k, v in filters.items():
        c = c[c[k] == v]
    return list(c["cell"])
