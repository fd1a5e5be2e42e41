"""The rendered report opened in headless Chromium, as a reader sees it: every image loads and
has alternative text, no page is wider than the window, no console error, every notebook page
titled with its notebook and the run and linked back to the index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Browser, chromium_path

from travelagent.analysis.report import build_report
from travelagent.analysis.synth import standard_cells, write_synthetic_run
from travelagent.config import timeout_factor

# The first test builds the whole report (seven notebooks, each in its own kernel) in its setup:
# a minute on a quiet 2-core machine, more on a busy one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(round(360 * timeout_factor()))]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_synthetic_run(tmp_path_factory.mktemp("runs"), standard_cells(n=40))
    rep = build_report(run, tmp_path_factory.mktemp("report"), progress=False)
    assert rep.ok, [n.error for n in rep.notebooks if not n.ok]
    return rep.out_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = chromium_path()
    if exe is None:
        if os.environ.get("TRAVELAGENT_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium on this machine (apt install chromium)")
    b = Browser(exe)
    yield b
    b.close()


def test_every_report_page_reads_well_in_a_browser(report: Path, browser: Browser) -> None:
    pages = sorted(report.glob("0*.html"))
    assert len(pages) >= 5
    for page in [report / "index.html", *pages]:
        c = browser.open(page.as_uri())
        where = page.name
        assert c["console_errors"] == [], where
        assert c["broken"] == [] and c["no_alt"] == 0, where
        assert c["page_width"] <= c["window_width"] and c["wide_tables"] == 0, where
        if page.name != "index.html":
            # 05 has no figure; 07 has none unless the run is a load study
            assert c["images"] > 0 or "claims" in where or "saturation" in where, where
            assert c["back_link"], where
            # the title names the notebook and the run
            assert page.stem.split("_")[0] in c["title"] and "·" in c["title"], where


def test_report_pages_hide_code_and_parameters_and_show_no_raw_nan(report: Path) -> None:
    for page in sorted(report.glob("0*.html")):
        text = page.read_text()
        assert "run_path = " not in text and "injected" not in text.lower(), page.name
        assert "hl-ipython3" not in text, page.name  # code hidden: the .ipynb beside has it
        assert ">nan<" not in text.lower(), page.name
