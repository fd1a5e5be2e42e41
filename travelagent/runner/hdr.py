"""Per-cell HdrHistogram logs, in microseconds, written with HdrHistogram's log writer.

Two logs per cell, one interval histogram per second of the cell (by reply time):

- ``latency-uncorrected.hlog``: service time, ``recv - send``.
- ``latency-corrected.hlog``: ``recv - intended`` (the open-loop schedule); in a closed loop
  with think time, service time recorded with ``record_corrected_value`` at the think
  interval, HdrHistogram's own correction for coordinated omission.

Only messages with status ``ok`` have a latency; the others are counted in run.json.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3


def _histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def write_cell_logs(
    messages: Any, out_dir: Path, *, cell: str, think_ms: float = 0.0
) -> dict[str, Path]:
    """Write both logs for ``messages`` (a pandas DataFrame of one cell's rows)."""
    from hdrh.log import HistogramLogWriter

    ok = messages[messages["status"] == "ok"]
    paths = {
        "uncorrected": out_dir / "latency-uncorrected.hlog",
        "corrected": out_dir / "latency-corrected.hlog",
    }
    if ok.empty:
        start_s = 0.0
    else:
        start_s = float(ok["send_ns"].min()) / 1e9
    uncorrected: dict[int, Any] = defaultdict(_histogram)
    corrected: dict[int, Any] = defaultdict(_histogram)
    think_us = int(think_ms * 1000)
    for send, intended, recv in zip(
        ok["send_ns"].tolist(), ok["intended_ns"].tolist(), ok["recv_ns"].tolist(), strict=True
    ):
        second = int(recv / 1e9 - start_s)
        service_us = min(max(int((recv - send) / 1000), LOWEST_US), HIGHEST_US)
        corrected_us = min(max(int((recv - intended) / 1000), LOWEST_US), HIGHEST_US)
        uncorrected[second].record_value(service_us)
        if intended == send and think_us > 0:
            corrected[second].record_corrected_value(service_us, think_us)
        else:
            corrected[second].record_value(corrected_us)
    for kind, hists in (("uncorrected", uncorrected), ("corrected", corrected)):
        with open(paths[kind], "w") as fh:
            writer = HistogramLogWriter(fh)
            writer.output_comment(f"travelagent cell {cell}: {kind} latency, microseconds")
            writer.output_log_format_version()
            # Written by hand: hdrh's output_start_time formats the date with a missing method.
            iso = dt.datetime.fromtimestamp(start_s, dt.UTC).isoformat(" ")
            fh.write(f"#[StartTime: {start_s:.3f} (seconds since epoch), {iso}]\n")
            writer.output_legend()
            for second in sorted(hists):
                writer.output_interval_histogram(
                    hists[second],
                    start_time_stamp_sec=second,
                    end_time_stamp_sec=second + 1,
                    max_value_unit_ratio=1000.0,  # microseconds -> milliseconds in the max column
                )
            writer.close()
    return paths
