from __future__ import annotations

from pathlib import Path

from travelagent.analysis.compare import find_pair, optimizations_table
from travelagent.analysis.load import load_run
from travelagent.analysis.synth import SynthCell, default_links, standard_cells, write_synthetic_run


def test_pairs_differ_only_in_the_varied_factor_at_the_lowest_load(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path, [
        SynthCell("new-u50", "realtime", "http-new", users=50, n=5),
        SynthCell("new-u1", "realtime", "http-new", users=1, n=5),
        SynthCell("pooled-u1", "realtime", "http-pooled", users=1, n=5),
        SynthCell("pooled-u50", "realtime", "http-pooled", users=50, n=5),
        SynthCell("pooled-slow", "realtime", "http-pooled", n=5, links=default_links(50)),
    ]))  # fmt: skip
    pair = find_pair(run, [{"publish": "http-new"}], {"publish": "http-pooled"})
    assert pair == ("new-u1", "pooled-u1")
    assert find_pair(run, [{"publish": "http-new"}], {"publish": "ws-persistent"}) is None


def test_optimizations_table_says_which_comparisons_are_not_in_the_run(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path, standard_cells(n=40)))
    t = optimizations_table(run).set_index("comparison")
    assert t.loc["pooled HTTP publish vs new connection per publish", "effect"] == "lower"
    assert t.loc["streaming (first chunk) vs not streaming (whole reply), gateway",
                 "effect"] == "not in this run"  # fmt: skip
    assert t.loc["hybrid vs gateway", "effect"] == "no detectable difference"
