from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from travelagent.analysis import figures
from travelagent.analysis.hops import example_message
from travelagent.analysis.load import Run, load_run
from travelagent.analysis.loadcurve import load_table, windows
from travelagent.analysis.model import model_table
from travelagent.analysis.stats import latency_table
from travelagent.analysis.synth import standard_cells, write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return load_run(write_synthetic_run(tmp_path_factory.mktemp("runs"), standard_cells(n=30)))


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    plt.close("all")


def _labels(fig: plt.Figure) -> list[str]:
    return [ax.get_xlabel() for ax in fig.axes]


def test_every_figure_has_axes_labelled_with_units(run: Run, tmp_path: Path) -> None:
    figs = [
        figures.cdf(run, "service_ms"),
        figures.percentile_intervals(latency_table(run, n_boot=50)),
        figures.waterfall(run, example_message(run, "rt-http-new-stream") or ""),
        figures.decomposition_bars(run),
        figures.load_curves(load_table(run)),
        figures.model_vs_measured(model_table(run)),
        figures.first_chunk_vs_complete(run, ["rt-http-new-stream"]),
        figures.timeline(windows(run, "gateway-u50")),
    ]
    for fig in figs:
        assert all("[" in label for label in _labels(fig) if label), _labels(fig)
        assert any(_labels(fig))
        fig.savefig(tmp_path / "f.png", dpi=40)  # renders without error


def test_waterfall_of_an_unknown_message_says_so(run: Run) -> None:
    fig = figures.waterfall(run, "no-such-message")
    assert "no stamps" in fig.axes[0].texts[0].get_text()
