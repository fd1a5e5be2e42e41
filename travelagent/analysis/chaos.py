"""The report's "Faults" section: a run's ``chaos.csv`` as an HTML table (docs/chaos.md).

``faults_html(run_dir)`` is empty for a run without ``chaos.csv``, so the report includes it
unconditionally. A row whose ``lost`` or ``duplicated`` is not 0 is marked: the contract is 0
for both, every message ending ``ok`` or as an explicit error the client saw.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

SHOWN = ("fault", "path", "sent", "replied", "errored", "lost", "duplicated", "recovery_s")
CSS = ".chaos td.bad{background:#f8d0d0}.chaos td.why{font-size:85%;max-width:40em}"


def read_chaos(run_dir: str | Path) -> list[dict[str, str]] | None:
    """The rows of ``chaos.csv``, or None when the run has none."""
    path = Path(run_dir) / "chaos.csv"
    if not path.exists():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _cell(row: dict[str, str], col: str) -> str:
    value = row.get(col, "")
    bad = col in ("lost", "duplicated") and value not in ("", "0")
    if col == "recovery_s":
        value = f"{float(value):.2f}" if value else "none"
    return f'<td class="bad">{html.escape(value)}</td>' if bad else f"<td>{html.escape(value)}</td>"


def faults_html(run_dir: str | Path) -> str:
    """The "Faults" section for the report's index, or "" without chaos.csv."""
    rows = read_chaos(run_dir)
    if rows is None:
        return ""
    bad = sum(1 for r in rows if r.get("lost") not in ("", "0") or
              r.get("duplicated") not in ("", "0"))  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in SHOWN) + "<th>what the client was told</th>"
    body = []
    for r in rows:
        why = "; ".join(x for x in (r.get("error_reasons", ""), r.get("lost_reasons", "")) if x)
        body.append(
            "<tr>" + "".join(_cell(r, c) for c in SHOWN)
            + f'<td class="why">{html.escape(why)}</td></tr>'
        )  # fmt: skip
    verdict = (
        f"<p><strong>{bad} of {len(rows)} rows lost or duplicated messages</strong> (marked); "
        "the contract is 0 for both.</p>"
        if bad
        else f"<p>No row lost or duplicated a message ({len(rows)} rows).</p>"
    )
    return f"""<h2>Faults</h2>
<style>{CSS}</style>
<p>Each fault injected under steady load on each path (<a href="chaos.csv">chaos.csv</a>;
docs/chaos.md): <em>errored</em> ended with an explicit error the client saw; <em>lost</em>
ended with neither a reply nor an explicit error (the connection went, or nothing came before
the timeout); <em>duplicated</em> counts agent turns run twice and final replies delivered
twice; <em>recovery_s</em> is from the injection to the first ok reply of a message sent after
it.</p>
{verdict}
<table class="chaos"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
"""
