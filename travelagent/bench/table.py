"""The printed table: one block per section (a line per subject, a column per metric), then
every targeted figure beside its target with met or missed; pure, returns text."""

from __future__ import annotations

import math
from collections.abc import Sequence

from travelagent.bench.report import Row
from travelagent.bench.stats import Figure

NOT_MEASURED_HERE = (("`make report` on a fresh clone", "≤ 4 min", "not measured by the bench"),)


def fmt_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "msg/s":
        return f"{value:,.0f}"
    if unit == "×":
        return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"
    if unit == "%":
        return f"{value:+.1f}%"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def fmt_figure(f: Figure, unit: str) -> str:
    """``median (min-max)``; only the median when there was one round."""
    if len(f.values) <= 1:
        return fmt_value(f.median, unit)
    return f"{fmt_value(f.median, unit)} ({fmt_value(f.low, unit)}-{fmt_value(f.high, unit)})"


def _with_unit(text: str, unit: str) -> str:
    return text if unit in ("×", "%") else f"{text} {unit}"


def _mark(row: Row) -> str:
    return {"met": " ✓", "missed": " ✗"}.get(row.verdict, "")


def _grid(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in lines)]


def section_table(rows: list[Row]) -> list[str]:
    subjects = list(dict.fromkeys(r.subject for r in rows))
    metrics = list(dict.fromkeys((r.metric, r.unit) for r in rows))
    cell = {(r.subject, r.metric): f"{fmt_figure(r.figure, r.unit)}{_mark(r)}" for r in rows}
    header = ["", *(f"{m} [{u}]" for m, u in metrics)]
    lines = [[s, *(cell.get((s, m), "") for m, _ in metrics)] for s in subjects]
    return _grid(header, lines)


def render(
    rows: list[Row], *, rounds: int, skipped: list[tuple[str, str]], notes: Sequence[str] = ()
) -> str:
    out = [f"median (min-max) over {rounds} interleaved round(s); ✓ met, ✗ missed target"]
    for section in dict.fromkeys(r.section for r in rows):
        out += ["", f"== {section}", *section_table([r for r in rows if r.section == section])]
    targeted = [r for r in rows if r.target is not None]
    lines = [[r.label, _with_unit(fmt_figure(r.figure, r.unit), r.unit), r.target.text, r.verdict]
             for r in targeted if r.target is not None]  # fmt: skip
    lines += [[what, "-", goal, why] for what, goal, why in NOT_MEASURED_HERE]
    out += ["", "== targets", *_grid(["figure", "measured", "target", "verdict"], lines)]
    met = sum(r.verdict == "met" for r in targeted)
    out.append(f"{met} of {len(targeted)} measured targets met")
    out += [f"note: {note}" for note in notes]
    out += [f"skipped: {what}: {why}" for what, why in skipped]
    return "\n".join(out)
