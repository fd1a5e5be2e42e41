"""Do two runs of the same experiment agree? What a reader checks before trusting a report.

Two runs agree when every claim gets the same verdict from each, and each configuration's p50
of the time outside the LLM (what the path itself costs; the LLM's time is common to every path
by design) is about the same in both. The second figure is the one drift on a shared machine
moves first: a slower disk or a busier core shows there long before it moves a verdict.

Per configuration the table gives both p50s, their n, the difference in percent of run A's, and
the 95% interval of that difference from two independent two-stage bootstraps (repetitions,
then messages), so a reader can tell drift from the noise of one run. The summary is the median
and the worst absolute difference over the configurations both runs measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from travelagent.analysis import stats

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

DEFAULT_TOLERANCE_PCT = 2.0
N_BOOT = 400


@dataclass(frozen=True)
class Agreement:
    verdicts: pd.DataFrame  # claim_id, verdict_a, verdict_b, agree
    p50: pd.DataFrame  # config, n_a, p50_a_ms, n_b, p50_b_ms, diff_pct, diff_ci_low, diff_ci_high
    tolerance_pct: float

    @property
    def verdicts_agree(self) -> bool:
        return bool(self.verdicts["agree"].all()) if len(self.verdicts) else True

    @property
    def median_diff_pct(self) -> float:
        d = self.p50["diff_pct"].abs().dropna()
        return float(d.median()) if len(d) else math.nan

    @property
    def worst_diff_pct(self) -> float:
        d = self.p50["diff_pct"].abs().dropna()
        return float(d.max()) if len(d) else math.nan

    @property
    def p50_agree(self) -> bool:
        m = self.median_diff_pct
        return bool(math.isfinite(m) and m <= self.tolerance_pct)

    @property
    def agree(self) -> bool:
        return self.verdicts_agree and self.p50_agree


def _boot_p50(run: Run, config: str, seed: int) -> tuple[int, float, np.ndarray]:
    from travelagent.analysis.compare import OVERHEAD, sample

    s = sample(run, config, OVERHEAD)
    vals = s["value"].to_numpy(dtype="float64")
    if len(vals) == 0:
        return 0, math.nan, np.full(N_BOOT, math.nan)
    groups = stats.group_indices(s["repetition"])
    boot = stats.cluster_bootstrap_quantile(groups, vals, 0.5, n_boot=N_BOOT, seed=seed)
    return len(vals), float(np.median(vals)), boot


def _configs(run: Run) -> list[str]:
    from travelagent.analysis.claims import usable

    run, _ = usable(run)
    cells = run.cells
    col = "config" if "config" in cells else None
    names = cells[col] if col else pd.Series(cells.index)
    return sorted({str(c) for c in names})


def p50_table(a: Run, b: Run) -> pd.DataFrame:
    """Each configuration both runs measured (flagged cells left out, as the verdicts do)."""
    from travelagent.analysis.claims import usable

    ua, _ = usable(a)
    ub, _ = usable(b)
    common = [c for c in _configs(a) if c in set(_configs(b))]
    rows = []
    for i, config in enumerate(common):
        n_a, p_a, boot_a = _boot_p50(ua, config, seed=2 * i + 1)
        n_b, p_b, boot_b = _boot_p50(ub, config, seed=2 * i + 2)
        diff = (p_b - p_a) / p_a * 100 if p_a else math.nan
        lo, hi = stats.interval((boot_b - boot_a) / p_a * 100) if p_a else (math.nan, math.nan)
        rows.append({"config": config, "n_a": n_a, "p50_a_ms": p_a, "n_b": n_b, "p50_b_ms": p_b,
                     "diff_pct": diff, "diff_ci_low": lo, "diff_ci_high": hi})  # fmt: skip
    return pd.DataFrame(rows, columns=["config", "n_a", "p50_a_ms", "n_b", "p50_b_ms", "diff_pct",
                                       "diff_ci_low", "diff_ci_high"])  # fmt: skip


def verdict_table(a: Run, b: Run) -> pd.DataFrame:
    from travelagent.analysis.claims import claims_table

    va = claims_table(a).set_index("id")
    vb = claims_table(b).set_index("id")
    ids = list(va.index) + [i for i in vb.index if i not in va.index]
    out = pd.DataFrame({"claim_id": ids})
    out["verdict_a"] = [str(va["verdict"].get(i, "absent")) for i in ids]
    out["verdict_b"] = [str(vb["verdict"].get(i, "absent")) for i in ids]
    out["agree"] = out["verdict_a"] == out["verdict_b"]
    return out


def compare_runs(a: Run, b: Run, *, tolerance_pct: float = DEFAULT_TOLERANCE_PCT) -> Agreement:
    return Agreement(verdict_table(a, b), p50_table(a, b), tolerance_pct)


def render(result: Agreement, name_a: str, name_b: str) -> str:
    """The two tables and the summary as plain text."""
    lines = [f"A = {name_a}", f"B = {name_b}", "", "verdicts"]
    w = max([len(str(c)) for c in result.verdicts["claim_id"]] + [5])
    lines.append(f"  {'claim':<{w}}  {'A':<13} {'B':<13}")
    for _, r in result.verdicts.iterrows():
        mark = "" if r["agree"] else "   <- differs"
        lines.append(f"  {r['claim_id']:<{w}}  {r['verdict_a']:<13} {r['verdict_b']:<13}{mark}")
    lines += ["", "p50 of the time outside the LLM, per configuration (ms)"]
    w = max([len(str(c)) for c in result.p50["config"]] + [6])
    lines.append(f"  {'config':<{w}} {'n A':>6} {'p50 A':>8} {'n B':>6} {'p50 B':>8} "
                 f"{'B-A %':>7}  95% interval")  # fmt: skip
    for _, r in result.p50.iterrows():
        lines.append(
            f"  {r['config']:<{w}} {r['n_a']:>6} {r['p50_a_ms']:>8.2f} {r['n_b']:>6} "
            f"{r['p50_b_ms']:>8.2f} {r['diff_pct']:>+7.2f}  "
            f"[{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}]"
        )
    n_diff = int((~result.verdicts["agree"]).sum())
    lines += [
        "",
        f"verdicts: {len(result.verdicts) - n_diff} of {len(result.verdicts)} agree",
        f"p50 outside the LLM: |B-A| median {result.median_diff_pct:.2f}%, worst "
        f"{result.worst_diff_pct:.2f}% over {len(result.p50)} configurations "
        f"(tolerance {result.tolerance_pct:g}% at the median: "
        f"{'met' if result.p50_agree else 'missed'})",
    ]
    return "\n".join(lines)
