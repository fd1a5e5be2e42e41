"""Ctrl-C works however ``travelagent`` was started: a background command of a shell without
job control starts with SIGINT ignored, and so would every child it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD_SAYS = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_cli_restores_sigint_for_itself_and_its_children() -> None:
    script = (
        "import signal, subprocess, sys\n"
        "from travelagent.cli import restore_sigint\n"
        "before = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "restore_sigint()\n"
        "child = subprocess.run([sys.executable, '-c', sys.argv[1]], capture_output=True,"
        " text=True).stdout.strip()\n"
        "print(before, signal.getsignal(signal.SIGINT) is signal.default_int_handler, child)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, CHILD_SAYS], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_ignore_sigint,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "True"]


def test_without_it_the_ignored_sigint_would_reach_the_children() -> None:
    res = subprocess.run(
        [sys.executable, "-c", CHILD_SAYS], capture_output=True, text=True, timeout=60,
        preexec_fn=_ignore_sigint,
    )  # fmt: skip
    assert res.stdout.strip() == "False"  # what the restore above is for
