"""The worker's memory bounds from its command line and environment: bad values are refused
with the flag's name, before anything listens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("flag", "env"),
    [(["--webhook-dedup-memory", "0"], {}), (["--webhook-dedup-memory", "many"], {}),
     ([], {"TRAVELAGENT_WEBHOOK_DEDUP_MEMORY": "-3"})],
)  # fmt: skip
def test_a_bad_webhook_memory_bound_is_refused_with_its_name(
    flag: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "travelagent", "serve", "worker", "--port", "1",
         "--db", str(tmp_path / "w.db"), *flag],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert res.returncode == 2
    assert "--webhook-dedup-memory (or $TRAVELAGENT_WEBHOOK_DEDUP_MEMORY)" in res.stderr
