"""The committed reference report (data/reference/report/) is the one its committed run gives:
a reader of the repository sees current findings before running anything."""

from __future__ import annotations

import numpy as np
import pandas as pd

from travelagent.analysis.claims import claims_csv, claims_table
from travelagent.analysis.load import load_run, reference_run
from travelagent.analysis.reference import reference_dir

REPORT = reference_dir() / "report"


def test_the_committed_report_is_current_with_the_committed_run() -> None:
    run = load_run(reference_run())
    index = (REPORT / "index.html").read_text()
    assert run.run_id in index
    committed = pd.read_csv(REPORT / "claims.csv")
    now = claims_csv(claims_table(run))
    assert list(committed["claim_id"]) == list(now["claim_id"])
    assert list(committed["verdict"]) == list(now["verdict"]), "regenerate: make reference"
    np.testing.assert_allclose(
        committed["estimate"].astype(float), now["estimate"].astype(float), rtol=1e-6
    )


def test_the_committed_report_is_whole_and_small() -> None:
    pages = sorted(p.name for p in REPORT.glob("0*.html"))
    assert len(pages) >= 5
    index = (REPORT / "index.html").read_text()
    for page in pages:
        assert f'href="{page}"' in index
        assert "../../../notebooks/" in (REPORT / page).read_text()  # code: the source notebook
    size = sum(f.stat().st_size for f in REPORT.rglob("*") if f.is_file())
    assert size < 5_000_000
