"""The soak's verdict on memory: flat only when the second half's slope interval is within the
stated bound; the loop-lag ring and the tracemalloc diagnostic that the soak relies on."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from travelagent.monitor import TRACEMALLOC_ENV, LoopLagMonitor, start_tracemalloc_from_env
from travelagent.runner.soak import FLAT_BOUND_MIB_PER_MIN, MIB, main, memory_summary, verdict


def test_verdict_needs_the_whole_interval_inside_the_bound() -> None:
    assert FLAT_BOUND_MIB_PER_MIN == 0.5
    assert verdict(-0.2, 0.3) == "flat"
    assert verdict(-0.2, 0.7) == "unclear"  # could be growing: not called flat
    assert verdict(0.6, 0.9) == "growing"
    assert verdict(-0.9, 0.1) == "unclear"
    assert verdict(math.nan, math.nan) == "unclear"
    assert verdict(0.6, 0.9, bound=1.0) == "flat"


def _rss(
    per_min_first: float, per_min_late: float, seconds: int = 600
) -> list[tuple[int, str, int]]:
    t0 = 1_000_000_000_000
    out = []
    for s in range(seconds):
        first = per_min_first * min(s, seconds // 2) / 60
        late = per_min_late * max(0, s - seconds // 2) / 60
        noise = 0.05 if s % 2 else -0.05
        out.append((t0 + s * 1_000_000_000, "p", int((50 + first + late + noise) * MIB)))
    return out


def test_a_cache_filling_then_flat_is_flat_and_a_leak_is_growing() -> None:
    t0 = 1_000_000_000_000
    filled = memory_summary(_rss(3.0, 0.0), t0, 600)["p"]
    assert filled["verdict"] == "flat" and filled["slope_mib_per_min"] > 1
    assert filled["late_windows"] >= 20 and filled["flat_bound_mib_per_min"] == 0.5
    leak = memory_summary(_rss(2.0, 2.0), t0, 600)["p"]
    assert leak["verdict"] == "growing"
    slow = memory_summary(_rss(0.0, 0.8), t0, 600)["p"]  # above the bound, if slowly
    assert slow["verdict"] == "growing"


def test_bad_soak_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--flat-bound", "0"]) == 2
    assert main(["--idempotency-max-keys", "0"]) == 2
    assert main(["--paths", "nowhere"]) == 2
    assert "must be" in capsys.readouterr().err


def test_the_loop_lag_ring_keeps_the_last_samples_in_order() -> None:
    m = LoopLagMonitor(keep=3)
    assert m.lags_ns == [] and math.isnan(m.summary()["p50_ms"])
    for lag in (1, 2, 3, 4, 5_000_000):
        m.record(lag)
    assert m.lags_ns == [3, 4, 5_000_000]
    assert m.summary()["max_ms"] == 5.0 and m.summary()["n"] == 3
    with pytest.raises(ValueError):
        LoopLagMonitor(keep=0)


def test_the_tracemalloc_diagnostic_is_off_unless_asked(tmp_path: Path) -> None:
    assert TRACEMALLOC_ENV not in os.environ
    assert start_tracemalloc_from_env("test") is None
    code = (
        "import time\n"
        "from travelagent.monitor import start_tracemalloc_from_env\n"
        "assert start_tracemalloc_from_env('probe') is not None\n"
        "held = []\n"
        "for _ in range(40):\n"
        "    held.append(bytearray(100_000)); time.sleep(0.02)\n"
    )
    env = {**os.environ, TRACEMALLOC_ENV: str(tmp_path), "TRAVELAGENT_TRACEMALLOC_S": "0.2"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    [dump] = list(tmp_path.glob("tracemalloc-probe-*.txt"))
    text = dump.read_text()
    assert "== probe t+" in text and "<string>:6" in text  # the growing line is named
    bad = {**os.environ, TRACEMALLOC_ENV: str(tmp_path), "TRAVELAGENT_TRACEMALLOC_S": "soon"}
    r = subprocess.run([sys.executable, "-c", code], env=bad, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode != 0 and "TRAVELAGENT_TRACEMALLOC_S" in r.stderr
