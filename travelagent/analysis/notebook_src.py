"""Source of the notebooks under notebooks/: ``python -m travelagent.analysis.notebook_src``
rewrites them (without outputs). Keeping them here makes them reviewable as code and lets the
tests check that the committed .ipynb files are current.

Each notebook: a title, a cell tagged ``parameters`` (``run_path = None``: the newest run in
data/runs/, else data/reference/), then sections of one markdown cell saying what the picture
shows and one short code cell calling the analysis package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = """\
%matplotlib inline
import pandas as pd
from travelagent.analysis import claims, compare, decompose, figures, hops, load, loadcurve
from travelagent.analysis import model, nbhelp, stats

pd.set_option("display.max_colwidth", 200)
run = nbhelp.open_run(run_path)"""

Cell = tuple[str, str]  # ("md" | "code", source)

NOTEBOOKS: dict[str, tuple[str, list[Cell]]] = {
    "01_hops.ipynb": (
        "# 01 · Hops on each path\n\n"
        "How many network hops does a message take on the gateway and on the realtime path? "
        "The counts below come from the stamps each component adds (a hop is the interval "
        "between two consecutive stamps; a network hop joins stamps of two different "
        "processes), not from the architecture note.",
        [
            (
                "md",
                "## Hop counts per path\n\n"
                "`network_hops`: one-way legs on the message's path. `http_exchanges`: those "
                "legs that are HTTP requests (the webhook POST; the publish unless it rides a "
                "socket) whose response crosses the network once more. `traversals` = both, "
                "the count the note's 2-3 and 5-6 refer to. Only messages carrying every stamp "
                "of their path are counted.",
            ),
            (
                "code",
                "counts = hops.hop_counts(run)\n"
                "nbhelp.show(counts, 'No fully stamped messages in this run: hops cannot be "
                "counted.')",
            ),
            (
                "md",
                "## Each path as a waterfall\n\n"
                "One message per path (the one with the median service time, lightest load). "
                "Each bar is a hop, placed at its start time; colour says network (HTTP legs "
                "lighter), LLM or processing; the number is its duration in ms. A dotted line "
                "marks the first chunk of a streamed reply.",
            ),
            (
                "code",
                "cells = nbhelp.path_cells(run)\n"
                "if not cells:\n"
                "    nbhelp.note('*No ok messages in this run.*')\n"
                "for cell in cells:\n"
                "    msg = hops.example_message(run, cell)\n"
                "    if msg is None:\n"
                "        nbhelp.note(f'*{cell}: no stamped messages.*')\n"
                "        continue\n"
                "    figures.waterfall(run, msg)",
            ),
            (
                "md",
                "## Mean duration of each hop\n\n"
                "Mean and median ms of every hop, by position on the path, over all messages of "
                "each of those cells.",
            ),
            (
                "code",
                "dh = decompose.decompose_hops(run)\n"
                "nbhelp.show(dh[dh['cell'].isin(cells)], precision=2)",
            ),
        ],
    ),
    "02_gateway_vs_realtime.ipynb": (
        "# 02 · Gateway vs realtime\n\n"
        "The two paths side by side at the lightest load: distributions, percentiles with "
        "bootstrap intervals, and where the time goes.",
        [
            (
                "md",
                "## Distributions\n\n"
                "Empirical CDF of the service time (`recv - send`, the whole reply) of one cell "
                "per path (unstreamed where the run has it, lightest load). A curve further "
                "left is faster; the gap between curves at a height is the difference at that "
                "percentile.",
            ),
            (
                "code",
                "cells = nbhelp.path_cells(run)\n"
                "if cells:\n"
                "    figures.cdf(run, 'service_ms', cells)\n"
                "else:\n"
                "    nbhelp.note('*No ok messages in this run.*')",
            ),
            (
                "md",
                "## Percentiles with 95 % bootstrap intervals\n\n"
                "Service time beside the time corrected for coordinated omission "
                "(`recv - intended`): when the load generator falls behind its schedule, the "
                "corrected time counts the wait the uncorrected one hides. `n` is the number of "
                "samples; a p99.9 of fewer than ~1000 samples is close to the maximum.",
            ),
            (
                "code",
                "table = stats.latency_table(run)\n"
                "nbhelp.show(table[table['cell'].isin(cells)] if len(table) else table)\n"
                "if len(table) and cells:\n"
                "    figures.percentile_intervals(table[table['cell'].isin(cells)], 'service_ms')",
            ),
            (
                "md",
                "## The difference\n\n"
                "Realtime median minus gateway median, paired on equal conditions (same "
                "streaming, LLM, links, load), with its interval.",
            ),
            (
                "code",
                "pair = compare.find_pair(run, compare.REALTIME_BASELINES, "
                "{'arch': 'gateway'}, ignore=('publish', 'webhook_mode'))\n"
                "if pair is None:\n"
                "    nbhelp.note('*Not in this run: no gateway and realtime cells under equal "
                "conditions.*')\n"
                "else:\n"
                "    nbhelp.show(pd.DataFrame([compare.compare_cells(run, *pair)]))",
            ),
            (
                "md",
                "## Where the time goes\n\n"
                "Mean time per message split into network legs (HTTP legs hatched), the LLM "
                "(`agent.start` to `llm.done`) and processing/queueing (everything else). The "
                "parts of each message add up to its service time exactly; means of parts add "
                "up to the mean.",
            ),
            (
                "code",
                "if cells:\n"
                "    figures.decomposition_bars(run, cells)\n"
                "dc = decompose.decompose_cells(run)\n"
                "nbhelp.show(dc[dc['cell'].isin(cells)], 'No stamped messages in this run.')",
            ),
        ],
    ),
    "03_optimizations.ipynb": (
        "# 03 · The note's optimizations, each against its baseline\n\n"
        "Publish modes (new HTTP connection, pooled HTTP, persistent socket), streaming, the "
        "webhook mode, and the hybrid. Each comparison pairs two cells that differ only in "
        "the option, at the lightest load; `gain_ms` is baseline median minus variant median "
        "(positive: the option helps) with its 95 % bootstrap interval.",
        [
            ("code", "opt = compare.optimizations_table(run)\nnbhelp.show(opt)"),
            (
                "md",
                "## Publish modes\n\n"
                "CDFs of the realtime path with each publish mode (unstreamed cells, or the "
                "streamed ones when that is all the run has).",
            ),
            (
                "code",
                "def realtime_cells(streaming):\n"
                "    return [c for c in nbhelp.representative_cells(run, streaming=streaming)\n"
                "            if run.cells.loc[c, 'arch'] == 'realtime']\n"
                "pub = realtime_cells(False)\n"
                "if len(pub) < 2:\n"
                "    pub = realtime_cells(True)\n"
                "if len({run.cells.loc[c, 'publish'] for c in pub}) > 1:\n"
                "    figures.cdf(run, 'service_ms', pub, title='Realtime path by publish mode')\n"
                "else:\n"
                "    nbhelp.note('*Not in this run: fewer than two publish modes.*')",
            ),
            (
                "md",
                "## Streaming: first chunk vs complete reply\n\n"
                "Dashed: time to the first chunk (what a user perceives as the answer starting); "
                "solid: time to the whole reply.",
            ),
            (
                "code",
                "streamed = nbhelp.cells_where(run, streaming=True)\n"
                "if streamed:\n"
                "    figures.first_chunk_vs_complete(run, streamed)\n"
                "else:\n"
                "    nbhelp.note('*Not in this run: no streaming cells.*')",
            ),
            (
                "md",
                "Percentiles of both, with intervals, for the streamed cells: `ttfc_ms` is "
                "the time to the first chunk, `service_ms` the time to the complete reply.",
            ),
            (
                "code",
                "if streamed:\n"
                "    tt = stats.latency_table(run, ('ttfc_ms', 'service_ms'))\n"
                "    nbhelp.show(tt[tt['cell'].isin(streamed)])",
            ),
            ("md", "## Webhook modes\n\nReply after publishing vs acknowledge the webhook first."),
            (
                "code",
                "wh = nbhelp.cells_where(run, arch='realtime', streaming=False)\n"
                "modes = {run.cells.loc[c, 'webhook_mode'] for c in wh}\n"
                "if len(modes) > 1:\n"
                "    figures.cdf(run, 'service_ms', wh, title='Realtime path by webhook mode')\n"
                "else:\n"
                "    nbhelp.note('*Not in this run: a single webhook mode.*')",
            ),
            (
                "md",
                "## Hybrid vs gateway\n\n"
                "The hybrid sends agent traffic over the gateway while presence and rooms ride "
                "the realtime service; its agent latency should match the gateway's.",
            ),
            (
                "code",
                "pair = compare.find_pair(run, [{'arch': 'gateway'}], {'arch': 'hybrid'})\n"
                "if pair:\n"
                "    figures.cdf(run, 'service_ms', list(pair), title='Hybrid vs gateway')\n"
                "else:\n"
                "    nbhelp.note('*Not in this run: no hybrid cell paired with a gateway "
                "cell.*')",
            ),
        ],
    ),
    "04_load.ipynb": (
        "# 04 · Under load\n\n"
        "Each cell is one point: offered load (the rate of intended sends), throughput "
        "(completed replies per second), and percentiles of the service time and of the "
        "time corrected for coordinated omission. Cells that differ only in load form a "
        "series.",
        [
            ("code", "lt = loadcurve.load_table(run)\nnbhelp.show(lt, precision=2)"),
            (
                "md",
                "## Percentiles and throughput vs offered load\n\n"
                "Left: p50 and p99, service (dashed) and corrected (solid), log scale; a "
                "vertical line marks the knee (the corrected p99 doubles from the lightest "
                "point, or throughput falls under 90 % of the offered rate). Right: throughput; "
                "on the dotted diagonal every request is served as offered.",
            ),
            (
                "code",
                "if len(lt) and lt.groupby('series').size().max() > 1:\n"
                "    figures.load_curves(lt)\n"
                "else:\n"
                "    nbhelp.note('*Not in this run: no series with more than one load level.*')",
            ),
            (
                "md",
                "## Knees and tail growth\n\n"
                "Per series, the last load before the knee and the first past it; then how the "
                "tail grows relative to the median (p99.9 / p50) and how much the correction "
                "adds at p99.",
            ),
            (
                "code",
                "nbhelp.show(loadcurve.knees(lt) if len(lt) else lt)\n"
                "if len(lt):\n"
                "    tail = lt[['cell', 'series', 'offered_rps']].copy()\n"
                "    tail['tail_ratio'] = lt['corrected_p99.9_ms'] / lt['corrected_p50_ms']\n"
                "    tail['correction_at_p99_ms'] = lt['corrected_p99_ms'] - "
                "lt['service_p99_ms']\n"
                "    nbhelp.show(tail, precision=2)",
            ),
            (
                "md",
                "## The heaviest cell of each series, second by second\n\n"
                "Percentiles per one-second window of intended send time (above) and the "
                "offered and completed rates (below): a ramp, a spike, or a queue that keeps "
                "growing shows here, where a whole-cell percentile would average it away.",
            ),
            (
                "code",
                "if len(lt):\n"
                "    heaviest = lt.sort_values('offered_rps').groupby('series').tail(1)\n"
                "    for cell in heaviest['cell']:\n"
                "        figures.timeline(loadcurve.windows(run, cell), title=f'{cell} over time')"
                "\n"
                "else:\n"
                "    nbhelp.note('*No messages in this run.*')",
            ),
            (
                "md",
                "## Locust's own view\n\n"
                "Locust's summary per cell (requests, failures, its own percentiles), an "
                "independent check of the records above.",
            ),
            (
                "code",
                "ls = load.locust_stats(run)\n"
                "cols = [c for c in ('cell', 'Name', 'Request Count', 'Failure Count', "
                "'Median Response Time', '99%', 'Requests/s') if c in ls]\n"
                "nbhelp.show(ls[cols] if len(ls) else ls, 'Not in this run: no Locust CSV "
                "files.')",
            ),
        ],
    ),
    "05_claims.ipynb": (
        "# 05 · The note's claims\n\n"
        "Each claim of the architecture note with a verdict computed from this run: the "
        "quantity it rests on with its 95% interval and n, against the claim's line. "
        "`confirmed` or `refuted` when the interval lies on one side, `inconclusive` when it "
        "straddles the line (with the data expected to decide it), `not tested` when the run "
        "lacks the cells. The rules are in docs/analysis.md.",
        [
            ("code", "ct = claims.claims_table(run)\nnbhelp.show(ct.drop(columns='numbers'))"),
            (
                "md",
                "## Stability\n\n"
                "Each claim's verdict from each repetition alone, and from all pooled. A claim "
                "whose repetitions disagree is close to its line; the pooled interval carries "
                "that spread.",
            ),
            ("code", "nbhelp.show(claims.stability_table(run))"),
            (
                "md",
                "## The hop model against the measurement\n\n"
                "Predicted median service time (link delays along the path, set-up round trips "
                "of new connections, transfer time, and the measured LLM time) beside the "
                "measured median; the error is what the model does not know (processing, "
                "queueing, jitter).",
            ),
            (
                "code",
                "mt = model.model_table(run)\n"
                "nbhelp.show(mt, 'Not in this run: no cells with link settings.')\n"
                "if len(mt):\n"
                "    figures.model_vs_measured(mt)",
            ),
            (
                "md",
                "## Leg by leg\n\n"
                "Each network leg's predicted one-way time beside its measured median.",
            ),
            ("code", "nbhelp.show(model.model_legs(run), 'Not in this run.', precision=2)"),
        ],
    ),
}


def build(name: str) -> nbformat.NotebookNode:
    title, cells = NOTEBOOKS[name]
    nb = new_notebook()
    nb.cells.append(new_markdown_cell(title))
    params = new_code_cell(
        "# Parameters (papermill): the run directory; None means the newest run in data/runs/,\n"
        "# else data/reference/.\nrun_path = None"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.append(new_code_cell(SETUP))
    for kind, src in cells:
        nb.cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids so regenerating does not churn the files.
    for i, c in enumerate(nb.cells):
        c["id"] = f"{Path(name).stem[:2]}-{i:02d}"
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def write_all(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        p = out / name
        p.write_text(render(name))
        paths.append(p)
    return paths


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else "notebooks"):
        print(p)
