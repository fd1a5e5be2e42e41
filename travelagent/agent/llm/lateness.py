"""How late the simulated model released what it planned: a busy-machine signal for the self-check.

The simulated model sleeps to an absolute due time before each release. When the process is
not given the CPU in time, or its event loop is busy, it wakes late, and the message it serves
is late by as much: a delay nobody configured. ``record`` keeps how late the first and the last
release of each answer woke (the first token and the end, streamed or not: two per answer; the
tokens between wake while the worker drains the earlier ones, the path's own cost), in ms,
clamped at 0 (asyncio may wake a sleeper up to one clock tick early). A release whose due time
had already passed when the model got to it (no sleep) is not counted: that lateness is the
caller's, not the timer's.

With ``TRAVELAGENT_LLM_LATENESS_DIR`` set (the runner sets it per cell), the process appends what
it recorded to ``<dir>/llm-lateness-<pid>.txt`` (one line of comma-separated ms per flush) at
most every ``FLUSH_S`` seconds, and once more ``FLUSH_S`` after the last release, so the runner
reads every value of a cell after its last reply. Appending the new values costs one small write
per flush; summarising is left to the reader (``read_lateness``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

LATENESS_DIR_ENV = "TRAVELAGENT_LLM_LATENESS_DIR"
FLUSH_S = 0.2
FILE_GLOB = "llm-lateness-*.txt"


class LatenessRecorder:
    """Lateness of timed releases, appended to a file in ``out_dir`` (if any) in batches."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | None = None,
        *,
        flush_s: float = FLUSH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.flush_s = flush_s
        self.clock = clock
        self.n = 0
        self.pending: list[float] = []
        self._last_flush = -float("inf")
        self._timer: asyncio.TimerHandle | None = None

    @property
    def path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / f"llm-lateness-{os.getpid()}.txt"

    def record(self, late_s: float) -> None:
        """One timed release that woke ``late_s`` seconds after its due time."""
        self.n += 1
        if self.out_dir is None:
            return
        self.pending.append(max(late_s * 1000.0, 0.0))
        now = self.clock()
        if now - self._last_flush >= self.flush_s:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next record flushes
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        """Append the values not yet written; a write that fails is given up (never raised into
        the message being served)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = self.clock()
        path = self.path
        if path is None or not self.pending:
            return
        line = ",".join(f"{v:.3f}" for v in self.pending) + "\n"
        self.pending = []
        with contextlib.suppress(OSError), open(path, "a") as fh:
            fh.write(line)


def read_lateness(out_dir: str | os.PathLike[str]) -> list[float]:
    """Every value the processes writing into ``out_dir`` recorded (ms); unreadable lines and
    values are skipped."""
    values: list[float] = []
    for path in sorted(Path(out_dir).glob(FILE_GLOB)):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            for item in line.split(","):
                try:
                    v = float(item)
                except ValueError:
                    continue
                if v == v and v >= 0 and v != float("inf"):
                    values.append(v)
    return values


RECORDER = LatenessRecorder(os.environ.get(LATENESS_DIR_ENV) or None)
"""This process's recorder (configured from the environment when the module is imported)."""
