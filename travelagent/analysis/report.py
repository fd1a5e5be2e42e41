"""The report: every notebook executed against one run, rendered to HTML, and an index.

``build_report`` executes each notebook with papermill (parameter ``run_path``), renders the
executed copy to HTML with nbconvert whether or not a cell failed (a failed notebook shows its
error where it happened), and writes ``index.html``: the claims table first, then links to the
notebooks with their status, then the run's metadata. One failing notebook never stops the
others; the caller learns of it from ``Report.ok``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from travelagent.analysis.chaos import faults_html
from travelagent.analysis.claims import claims_csv, claims_table, stability_table
from travelagent.analysis.load import Run, load_run, project_root

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class NotebookResult:
    name: str
    executed: Path
    html: Path | None
    ok: bool
    seconds: float
    error: str = ""


@dataclass
class Report:
    run_id: str
    out_dir: Path
    index: Path
    notebooks: list[NotebookResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.notebooks)


def default_notebooks_dir() -> Path:
    return project_root() / "notebooks"


def _error_text(err: BaseException) -> str:
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    tb = getattr(err, "traceback", None)
    text = f"{ename}: {evalue}"
    if tb:
        text += "\n" + "\n".join(tb)
    return _ANSI.sub("", text)


def _cell_error(executed: Path) -> str:
    """The first error output recorded in an executed notebook, as text."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # no notebook written, or a truncated one: nothing to show
        return ""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = "\n".join(out.get("traceback", []))
                return _ANSI.sub("", f"{out.get('ename')}: {out.get('evalue')}\n{tb}")
    return ""


def execute_notebook(
    src: Path, dest: Path, run_path: Path, *, timeout_s: float, kernel_name: str = "python3"
) -> tuple[bool, str]:
    """Execute ``src`` into ``dest`` with papermill in its own process; (ok, error text).

    A process per notebook keeps kernels (and papermill's working-directory changes) apart so
    notebooks can execute side by side, and keeps the kernels' chatter off our terminal.
    """
    cmd = [
        sys.executable, "-m", "papermill", str(src), str(dest),
        "-p", "run_path", str(run_path), "-k", kernel_name, "--cwd", str(src.parent),
        "--execution-timeout", str(int(max(1, timeout_s))), "--no-progress-bar",
    ]  # fmt: skip
    try:
        # the per-cell timeout bounds each cell; this bounds a kernel that never starts
        res = subprocess.run(cmd, capture_output=True, text=True, check=False,
                             timeout=timeout_s * 10 + 120)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"{src.name}: no result after {timeout_s * 10 + 120:.0f} s"
    if res.returncode == 0:
        return True, ""
    return False, _cell_error(dest) or res.stderr.strip()[-3000:] or f"exit {res.returncode}"


# Cells a reader of the report does not need: papermill's injected parameters (a path on the
# machine that ran it) and the notebook's own parameter cell.
_HIDDEN_TAGS = frozenset({"injected-parameters", "parameters"})

_PAGE_CSS = """
<style>
body { max-width: 72em; margin: 0 auto; padding: 0 1em; }
nav.report { font-family: system-ui, sans-serif; padding: 0.8em 0; border-bottom: 1px solid #ddd;
             margin-bottom: 1em; }
nav.report a { margin-right: 1.5em; }
/* wide tables scroll inside their output instead of widening the page */
.jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon table { font-size: 0.85em; }
.jp-RenderedHTMLCommon th { white-space: nowrap; }
img { max-width: 100%; height: auto; }
</style>
"""


def _markdown_title(nb: Any) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in str(cell.source).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def _is_ours(img: Any) -> bool:
    return str(img.get("alt") or "").startswith("Figure")


def _figure_alts(nb: Any) -> list[str]:
    """Alternative text for each image output, in document order: the section it belongs to
    (the nearest heading above it) and that section's first sentence."""
    alts: list[str] = []
    heading, sentence = "", ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = str(cell.source)
            heads = [ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")]
            body = " ".join(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
            if heads:
                heading = heads[-1]
            if body:
                sentence = body.split(". ")[0].strip().rstrip(".") + "."
            continue
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {}):
                alts.append(f"Figure: {heading}. {sentence}".strip())
    return alts


def render_html(executed: Path, dest: Path, *, run_id: str = "") -> Path | None:
    """Render an executed notebook to a standalone HTML page for readers: figures embedded with
    alternative text, code hidden (the notebook beside the page shows how each figure was
    made), no parameter cells, a title naming the notebook and the run, and a link back to the
    report's index."""
    import nbformat
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    if not executed.exists():
        return None
    nb = nbformat.read(str(executed), as_version=4)
    nb.cells = [c for c in nb.cells if not _HIDDEN_TAGS & set(c.metadata.get("tags", []))]
    title = _markdown_title(nb) or executed.stem
    page_title = f"{title} · {run_id}" if run_id else title
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)  # fmt: skip
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page_title}})
    soup = BeautifulSoup(body, features="html.parser")
    # The pages are static (figures and tables): no script from a CDN, which a reader offline
    # or behind a strict network could not load anyway.
    for script in soup.find_all("script"):
        src = str(script.get("src") or "")
        if src.startswith(("http://", "https://")) or "MathJax" in script.get_text():
            script.decompose()
    for img, alt in zip(soup.find_all("img"), _figure_alts(nb), strict=False):
        img["alt"] = alt
    for img in soup.find_all("img"):
        if not _is_ours(img):  # more images than outputs we could name: say where it is from
            img["alt"] = f"Figure from {title}"
    if soup.head is not None:
        soup.head.append(BeautifulSoup(_PAGE_CSS, features="html.parser"))
    if soup.body is not None:
        nav = BeautifulSoup(
            f'<nav class="report"><a href="index.html">&larr; report index</a>'
            f"<span>{html.escape(page_title)}</span> "
            f'<a href="{html.escape(executed.name)}" style="float:right">the notebook '
            "(code included)</a></nav>",
            features="html.parser",
        )
        soup.body.insert(0, nav)
    dest.write_text(str(soup))
    return dest


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.confirmed { background: #dff0d8; font-weight: bold; }
td.refuted { background: #f2dede; font-weight: bold; }
td.not-tested { background: #eee; color: #666; }
td.inconclusive { background: #fcf8e3; font-weight: bold; }
td.num { text-align: right; white-space: nowrap; }
.assume { color: #555; font-size: 0.9em; }
.failed { color: #a00; font-weight: bold; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
@media print { body { max-width: none; } a { color: inherit; } }
"""


def _num(x: object, digits: int = 1) -> str:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if f != f:
        return ""
    return f"{f:.3f}" if abs(f) < 1 else f"{f:.{digits}f}"


def _claims_html(table: pd.DataFrame) -> str:
    rows = []
    for r in table.to_dict("records"):
        cls = str(r["verdict"]).replace(" ", "-")
        interval = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if _num(r["ci_low"]) else ""
        extra = ""
        if r.get("needed"):
            extra += f"<br><em>{html.escape(str(r['needed']))}</em>"
        if r.get("excluded"):
            extra += (
                "<br><em>left out, flagged by the self-check: "
                f"{html.escape(str(r['excluded']))}</em>"
            )
        if r.get("assumptions"):
            extra += f'<p class="assume">{html.escape(str(r["assumptions"]))}</p>'
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(r['claim']))}</td>"
            f'<td class="{cls}">{html.escape(str(r["verdict"]))}</td>'
            f"<td>{html.escape(str(r['quantity']))}</td>"
            f'<td class="num">{_num(r["estimate"])}</td>'
            f'<td class="num">{interval}</td>'
            f"<td>{html.escape(str(r['threshold']))}</td>"
            f'<td class="num">{int(r["n"] or 0)}</td>'
            f"<td>{html.escape(str(r['evidence']))}<br>{html.escape(str(r['rationale']))}"
            f"{extra}</td>"
            "</tr>"
        )
    return (
        '<table id="claims"><thead><tr><th>claim</th><th>verdict</th><th>quantity</th>'
        "<th>estimate</th><th>95% interval</th><th>line</th><th>n</th>"
        "<th>evidence and rationale</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _stability_html(table: pd.DataFrame) -> str:
    return table.drop(columns=["id"]).to_html(index=False, border=0, escape=True)


def _flagged_html(run: Run) -> str:
    if "flagged" not in run.cells or not run.cells["flagged"].any():
        out = "<p>No cell was flagged: every cell's measurement stayed within the bounds.</p>"
    else:
        f = run.cells[run.cells["flagged"].astype(bool)][["cell", "flags"]]
        out = (
            "<p>These cells were disturbed by the testbed itself and are left out of every "
            "verdict:</p>" + f.to_html(index=False, border=0, escape=True)
        )
    return out + _retried_html(run)


def _retried_html(run: Run) -> str:
    """The cells whose flagged attempts were set aside and run again (``retry_flagged``)."""
    if "attempts" not in run.cells or not (run.cells["attempts"] > 0).any():
        return ""
    r = run.cells[run.cells["attempts"] > 0]
    kept = int((~r["flagged"].astype(bool)).sum())
    table = r[["cell", "attempts", "attempt_flags", "flagged"]].rename(
        columns={"attempts": "attempts set aside", "attempt_flags": "their flags",
                 "flagged": "last attempt flagged"})  # fmt: skip
    return (
        f"<p>{len(r)} cell(s) were flagged, set aside and run again (the experiment's "
        f"<code>retry_flagged</code>); {kept} of them passed the self-check on a later attempt. "
        "The report uses each cell's last attempt; the earlier ones stay in the run's "
        "<code>attempts/</code> directory with their records.</p>"
        + table.to_html(index=False, border=0, escape=True)
    )


def _cells_html(run: Run) -> str:
    cols = ["cell", "arch", "publish", "streaming", "webhook_mode", "profile", "load",
            "repetition", "status", "messages", "ok", "flagged"]  # fmt: skip
    c = run.cells[[k for k in cols if k in run.cells]]
    return c.to_html(index=False, border=0, escape=True)


def model_csv(run: Run, out_dir: Path | None = None) -> pd.DataFrame:
    """One row per measured cell: the latency model's predicted p50 (and p90, first content)
    beside the measured one; ``held_out`` cells were kept out of the fit
    (``analysis.latency_model``). With ``out_dir``, also writes the fit (``model_fit.json``,
    which ``travelagent predict`` reads) and the error summary (``model_errors.csv``)."""
    from travelagent.analysis.latency_model import error_summary, model_rows

    rows, fit, _ = model_rows(run)
    cols = ["cell", "held_out", "measured_p50_ms", "predicted_p50_ms", "error_pct"]
    if rows.empty or "error_pct" not in rows:
        return pd.DataFrame(columns=cols)
    if out_dir is not None:
        fit.save(out_dir / "model_fit.json")
        error_summary(rows).to_csv(out_dir / "model_errors.csv", index=False)
    return rows[cols + [c for c in rows.columns if c not in cols]]


def _seeds(run: Run) -> str:
    """The seeds behind the run: the scenarios' (the simulated model's) and, for repeated
    experiments, the message seeds (one per repetition)."""
    m = run.meta
    if m.get("seed") not in (None, ""):
        return str(m["seed"])
    scen = sorted({str((c.get("scenario") or {}).get("seed")) for c in m.get("cells") or []
                   if (c.get("scenario") or {}).get("seed") is not None})  # fmt: skip
    reps = sorted({int(c.get("repetition") or 1) for c in m.get("cells") or []})
    parts = []
    if scen:
        parts.append(f"scenario seed {', '.join(scen)} (the simulated model's timings)")
    if reps:
        parts.append(f"message seeds {', '.join(map(str, reps))} (one per repetition)")
    return "; ".join(parts)


def _conditions_section(run: Run, out: Path) -> str:
    """The latency model's check (model.csv, model_fit.json, model_errors.csv) and, for a run
    with a conditions grid, the claims map (claims_map.csv) and its crossover sentences
    (crossovers.txt); the index's section on them. Never fails the report."""
    from travelagent.analysis import claims_map as cm
    from travelagent.analysis.latency_model import error_summary, model_rows_with_components

    try:
        rows, fit, rule, components = model_rows_with_components(run)
    except Exception as err:  # the report stands without it; say why on stderr
        print(f"travelagent report: model.csv not written: {err}", file=sys.stderr)
        return f'<p class="failed">model not computed: {html.escape(str(err))}</p>'
    if rows.empty or "error_pct" not in rows:
        pd.DataFrame(columns=["cell", "held_out", "measured_p50_ms", "predicted_p50_ms",
                              "error_pct"]).to_csv(out / "model.csv", index=False)  # fmt: skip
        return "<p>No measured cell the latency model can predict.</p>"
    model_csv_cols = ["cell", "held_out", "measured_p50_ms", "predicted_p50_ms", "error_pct"]
    rows[model_csv_cols + [c for c in rows.columns if c not in model_csv_cols]].to_csv(
        out / "model.csv", index=False
    )
    fit.save(out / "model_fit.json")
    components.to_csv(out / "model_components.csv", index=False)
    summary = error_summary(rows)
    summary.to_csv(out / "model_errors.csv", index=False)
    parts = [
        "<h2>The latency model, checked on held-out cells</h2>",
        f'<p>Predicted against measured p50 per cell (<a href="model.csv">model.csv</a>; '
        f"error in % of the measured p50). Held out: {html.escape(rule)}. Cells the "
        "self-check flagged measured the testbed's own overload and are shown apart. "
        "<em>outside_ci</em> counts the cells whose prediction is outside the measured p50's "
        "own 95% interval (a small or bimodal cell's p50 is not known to 5%: an error inside "
        "that interval is the measurement's, not the model's); each cell's measured and "
        'predicted median per hop is in <a href="model_components.csv">model_components.csv'
        "</a>. "
        "<code>travelagent predict</code> uses this fit (model_fit.json) and its held-out "
        "band.</p>",
        summary.to_html(index=False, border=0, float_format=lambda x: f"{x:.2f}"),
    ]
    grid = cm.run_grid(run)
    if grid is None:
        return "\n".join(parts)
    try:
        cmap = cm.claims_map(run, fit, grid)
        cmap.to_csv(out / "claims_map.csv", index=False)
        sentences = cm.crossover_sentences(cm.crossover_table(fit, grid, cm.base_links(run)))
        (out / "crossovers.txt").write_text("\n".join(sentences) + "\n")
    except Exception as err:
        print(f"travelagent report: claims map not computed: {err}", file=sys.stderr)
        parts.append(f'<p class="failed">claims map not computed: {html.escape(str(err))}</p>')
        return "\n".join(parts)
    counts = (cmap.groupby(["claim", "source", "verdict"]).size().unstack(fill_value=0)
              .reset_index())  # fmt: skip
    parts += [
        "<h2>Where each claim holds: the conditions sweep</h2>",
        f"<p>{len(grid.points())} grid points (client RTT x worker-realtime RTT x LLM profile); "
        f"{cmap[cmap['source'] == 'measured']['point'].nunique()} measured, the rest predicted "
        "by the model with each path's held-out error band. Every verdict per point is in "
        '<a href="claims_map.csv">claims_map.csv</a>; heatmaps per claim are in notebook 06.'
        "</p>",
        counts.to_html(index=False, border=0),
        "<h3>Crossovers (computed from the model)</h3><ul>",
        *[f"<li>{html.escape(x)}</li>" for x in sentences],
        "</ul>",
    ]
    return "\n".join(parts)


def _saturation_section(run: Run, out: Path) -> str:
    """For a load study: each path's knee and the process that ran out first (knees.csv)."""
    from travelagent.analysis import saturation as sa

    try:
        if not len(run.ok()) or not sa.is_load_study(run):
            return ""
        points = sa.load_points(run)
        kn = sa.knees(points)
        first = sa.first_saturated(points, sa.cpu_table(run))
        queues = sa.queue_hops(run, points, kn)
    except Exception as err:
        return f'<p class="failed">load study not analysed: {html.escape(str(err))}</p>'
    table = kn.merge(first, on="series", how="left")
    table.to_csv(out / "knees.csv", index=False)
    items = []
    for r in table.to_dict("records"):
        grew = queues[queues["series"] == r["series"]].head(1)
        where = (f"; the hop that grew most past the knee: {grew.iloc[0]['hop']} "
                 f"({grew.iloc[0]['light_p50_ms']:.1f} → {grew.iloc[0]['past_knee_p50_ms']:.1f} ms)"
                 if len(grew) else "")  # fmt: skip
        items.append(
            f"<li><strong>{html.escape(str(r['series']))}</strong>: knee at about "
            f"{r['knee_rps']:.0f} messages/s offered (kept up at {r['last_ok_rps']:.0f}, not at "
            f"{r['first_past_rps']:.0f}; at most {r['max_throughput_rps']:.0f} replies/s); "
            f"first to run out: {html.escape(str(r['process']))} ({r['p90_pct']:.0f}% of a core "
            f"at p90 at {r['at_offered_rps']:.0f} messages/s; {html.escape(str(r['how']))})"
            f"{html.escape(where)}</li>"
        )
    return (
        "<h2>Load to saturation</h2><p>Open-loop arrival rate stepped up per path; the knee "
        "is the first point where throughput falls under 85% of the offered rate or the "
        'corrected p50 exceeds twice the lightest point\'s (<a href="knees.csv">knees.csv</a>; '
        "figures in notebook 07).</p><ul>" + "".join(items) + "</ul>"
    )


def _pooled_note(run: Run) -> str:
    """On a run over a conditions grid, the claims table pools cells measured under different
    conditions; say so and point at the per-point verdicts."""
    from travelagent.analysis.claims_map import run_grid

    try:
        grid = run_grid(run)
    except Exception:  # the note is a pointer; the report stands without it
        return ""
    if grid is None:
        return ""
    return (
        '<p class="note"><strong>Pooled over conditions.</strong> This run measured a grid of '
        "conditions (client RTT, worker-realtime RTT, LLM profile); each row below pools every "
        "measured point, so its estimate mixes conditions and is not the verdict under any "
        'one of them. The verdict per grid point is in <a href="claims_map.csv">claims_map.csv'
        "</a> and its maps in notebook 06.</p>"
    )


def _index_html(
    run: Run, report: Report, claims: str, stability: str = "", conditions: str = ""
) -> str:
    m = run.meta
    nb_rows = []
    for n in report.notebooks:
        link = (
            f'<a href="{html.escape(n.html.name)}">{html.escape(n.name)}</a>'
            if n.html
            else html.escape(n.name)
        )
        status = "ok" if n.ok else '<span class="failed">failed</span>'
        err = f"<pre>{html.escape(n.error[-3000:])}</pre>" if n.error else ""
        nb_rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{n.seconds:.1f} s</td>"
                       f"<td>{err}</td></tr>")  # fmt: skip
    facts = {
        "run": run.run_id,
        "kind": m.get("kind", ""),
        "status": m.get("status", ""),
        "started": m.get("started", ""),
        "ended": m.get("ended", ""),
        "seed": _seeds(run),
        "git commit": m.get("git_commit", ""),
        "scenarios": ", ".join(sorted({str(s) for s in run.cells["scenario_name"] if s})),
        "LLM profiles": ", ".join(sorted({str(s) for s in run.cells["profile"] if s})),
        "messages": f"{len(run.messages)} ({len(run.ok())} ok)",
    }
    facts_html = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    meta_json = html.escape(json.dumps(m, indent=2, sort_keys=True, default=str))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>travelagent report: {html.escape(run.run_id)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Latency report: {html.escape(run.run_id)}</h1>
<h2>The architecture note's claims</h2>
<p>Each claim's quantity with its 95% interval (repetitions, then messages, resampled) against
the claim's line; the rules are in docs/analysis.md. <em>inconclusive</em>: the interval
straddles the line, so this run cannot tell (it says how much more data would be expected to
decide); <em>not tested</em>: the run lacks the cells a claim needs. Also in
<a href="claims.csv">claims.csv</a>.</p>
{_pooled_note(run)}
{claims}
<h3>Stability: each repetition alone and pooled</h3>
{stability}
<h3>The instrument's self-check</h3>
{_flagged_html(run)}
<p>Bounds: a process at or above 90% of a core in 90% of its samples, event-loop lag p99 above
20 ms, a link releasing data more than 5 ms late at p99 (over at least 100 chunks), or Locust
warning of its own CPU
(cells/&lt;cell&gt;/selfcheck.json; runner/selfcheck.py says why each bound is where it is).</p>
{faults_html(run.path)}
{conditions}
<h2>Notebooks</h2>
<table><thead><tr><th>notebook</th><th>status</th><th>time</th><th>error</th></tr></thead>
<tbody>{"".join(nb_rows)}</tbody></table>
<h2>Run</h2>
<table>{facts_html}</table>
<h3>Cells</h3>
{_cells_html(run)}
<details><summary>run.json</summary><pre>{meta_json}</pre></details>
</body></html>
"""


def build_report(
    run_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    notebooks_dir: str | Path | None = None,
    timeout_s: float = 600.0,
    kernel_name: str = "python3",
    progress: bool = True,
    workers: int = 2,
) -> Report:
    """Execute and render every notebook against the run; write index.html; return the report.

    Raises ``RunError`` if ``run_path`` is not a run and ``FileNotFoundError`` if there are no
    notebooks; notebook failures are recorded in the result, not raised. ``workers`` notebooks
    execute at once (each in its own process).
    """
    from tqdm import tqdm

    run_dir = Path(run_path).resolve()
    run = load_run(run_dir)
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    sources = sorted(nb_dir.glob("[!_]*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"{nb_dir}: no notebooks to execute")
    out = Path(out_dir) if out_dir else project_root() / "data" / "reports" / run.run_id
    out.mkdir(parents=True, exist_ok=True)
    report = Report(run_id=run.run_id, out_dir=out, index=out / "index.html")

    def one(src: Path) -> NotebookResult:
        t0 = time.monotonic()
        executed = out / src.name
        ok, err = execute_notebook(src, executed, run_dir, timeout_s=timeout_s,
                                   kernel_name=kernel_name)  # fmt: skip
        try:
            page = render_html(executed, out / f"{src.stem}.html", run_id=run.run_id)
        except Exception as render_err:  # a notebook that cannot render is a failed one
            page, ok = None, False
            err = (err + "\n" if err else "") + f"rendering failed: {_error_text(render_err)}"
        return NotebookResult(src.name, executed, page, ok, time.monotonic() - t0, err)

    results: dict[str, NotebookResult] = {}
    with (
        ThreadPoolExecutor(max(1, min(workers, len(sources)))) as pool,
        tqdm(total=len(sources), desc="notebooks", unit="nb", disable=not progress) as bar,
    ):
        for res in (f.result() for f in as_completed(pool.submit(one, s) for s in sources)):
            results[res.name] = res
            bar.update()
    report.notebooks = [results[s.name] for s in sources]
    try:
        table = claims_table(run)
        claims_csv(table).to_csv(out / "claims.csv", index=False)
        claims = _claims_html(table)
    except Exception as err:  # the index is still worth writing without the table
        claims = f'<p class="failed">claims could not be computed: {html.escape(str(err))}</p>'
    try:
        stab = stability_table(run)
        stab.to_csv(out / "stability.csv", index=False)
        stability = _stability_html(stab)
    except Exception as err:
        stability = f'<p class="failed">stability not computed: {html.escape(str(err))}</p>'
    conditions = _conditions_section(run, out) + _saturation_section(run, out)
    if (run.path / "chaos.csv").exists():  # the Faults section links a copy beside the index
        shutil.copyfile(run.path / "chaos.csv", out / "chaos.csv")
    report.index.write_text(_index_html(run, report, claims, stability, conditions))
    return report
