"""What the testbed itself was doing while it measured: event-loop lag and CPU per process.

Two instruments, both cheap enough to leave on during every cell:

- ``LoopLagMonitor``: a task in a server's event loop that asks to wake every ``interval_s``
  and records how late it woke. Lateness is time the loop spent on something else (a long
  callback, a CPU starved by other processes): any message handled in that window waited too.
- ``CpuSampler``: a thread that reads each process's CPU time from ``/proc/<pid>/stat`` every
  ``interval_s`` and records the share of one core it used since the previous sample, and its
  resident memory (``/proc/<pid>/statm``) in ``rss`` (soaks check that it stays flat). Linux
  only; elsewhere it records nothing and says so.

Summaries are plain dicts of milliseconds and percentages, so they travel as JSON (``/healthz``,
``cells/<cell>/selfcheck.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

# One core's worth of CPU time per second of wall time is 100 %.
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; NaN for no values."""
    v = sorted(values)
    if not v:
        return float("nan")
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summary_ms(values_ns: Iterable[int]) -> dict[str, float]:
    """n, p50, p99 and max of nanosecond values, in milliseconds."""
    v = [x / 1e6 for x in values_ns]
    return {
        "n": float(len(v)),
        "p50_ms": round(quantile(v, 0.5), 4),
        "p99_ms": round(quantile(v, 0.99), 4),
        "max_ms": round(max(v), 4) if v else float("nan"),
    }


class LoopLagMonitor:
    """Records how late the event loop wakes a task that sleeps ``interval_s`` at a time."""

    def __init__(self, *, interval_s: float = 0.05, keep: int = 20_000) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.interval_s = interval_s
        # The last ``keep`` lags in a ring of 8-byte slots allocated once: a deque of int
        # objects would grow for keep × interval_s (17 minutes) before it stayed flat.
        self._ring = array("q", bytes(8 * keep))
        self._n = 0  # lags recorded so far (the ring holds the last min(_n, keep))
        self._task: asyncio.Task[None] | None = None

    @property
    def lags_ns(self) -> list[int]:
        """The lags kept, oldest first."""
        keep = len(self._ring)
        if self._n <= keep:
            return self._ring[: self._n].tolist()
        i = self._n % keep
        return (self._ring[i:] + self._ring[:i]).tolist()

    def record(self, lag_ns: int) -> None:
        self._ring[self._n % len(self._ring)] = lag_ns
        self._n += 1

    async def _run(self) -> None:
        interval_ns = int(self.interval_s * 1e9)
        while True:
            due = time.monotonic_ns() + interval_ns
            await asyncio.sleep(self.interval_s)
            # asyncio rounds its wake-ups up to whole milliseconds: up to 1 ms is the floor.
            self.record(max(0, time.monotonic_ns() - due))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def summary(self) -> dict[str, float]:
        out = summary_ms(self.lags_ns)
        out["interval_ms"] = self.interval_s * 1000
        return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; None if it is gone or not on Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes; None if it is gone or not on Linux."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            fields = fh.read().split()
        return int(fields[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


class CpuSampler:
    """Samples the CPU use of named processes every ``interval_s`` in a daemon thread.

    ``samples`` holds ``(t_ns, name, cpu_pct)`` rows: wall-clock time (comparable with the
    trace stamps), the process's label and its share of one core since the previous sample;
    ``rss`` holds ``(t_ns, name, rss_bytes)`` rows taken at the same moments.
    """

    def __init__(self, pids: Mapping[str, int], *, interval_s: float = 0.25) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.samples: list[tuple[int, str, float]] = []
        self.rss: list[tuple[int, str, int]] = []
        self.supported = os.path.exists("/proc/self/stat")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def _loop(self) -> None:
        last: dict[str, tuple[float, float]] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            t_ns = time.time_ns()
            for name, pid in list(self.pids.items()):
                cpu = cpu_seconds(pid)
                if cpu is None:
                    continue
                rss = rss_bytes(pid)
                if rss is not None:
                    self.rss.append((t_ns, name, rss))
                if name in last:
                    t0, c0 = last[name]
                    if now > t0:
                        self.samples.append((t_ns, name, round(100 * (cpu - c0) / (now - t0), 1)))
                last[name] = (now, cpu)
            self._stop.wait(self.interval_s)

    def start(self) -> CpuSampler:
        if self.supported and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CpuSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def attach_loop_lag(app: Any, *, interval_s: float = 0.05) -> LoopLagMonitor:
    """Run a ``LoopLagMonitor`` for the life of an aiohttp application (its ``/healthz`` shows
    ``monitor.summary()``)."""
    monitor = LoopLagMonitor(interval_s=interval_s)

    async def _start(_app: Any) -> None:
        monitor.start()

    async def _stop(_app: Any) -> None:
        await monitor.stop()

    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return monitor


# -- a diagnostic, off by default: where a server's Python memory grows -------------------------

TRACEMALLOC_ENV = "TRAVELAGENT_TRACEMALLOC"
TRACEMALLOC_INTERVAL_ENV = "TRAVELAGENT_TRACEMALLOC_S"


def start_tracemalloc_from_env(process: str) -> threading.Thread | None:
    """With ``TRAVELAGENT_TRACEMALLOC=<dir>`` set, trace Python allocations in this process and
    every ``TRAVELAGENT_TRACEMALLOC_S`` seconds (default 30) append to
    ``<dir>/tracemalloc-<process>-<pid>.txt`` the 25 source lines whose live memory grew most
    since the first snapshot. Off (nothing traced, nothing started) when unset: tracing slows
    every allocation, so it is for finding a leak, never for a measurement."""
    out_dir = os.environ.get(TRACEMALLOC_ENV, "")
    if not out_dir:
        return None
    try:
        interval_s = float(os.environ.get(TRACEMALLOC_INTERVAL_ENV, "30"))
    except ValueError:
        interval_s = float("nan")
    if not interval_s > 0:
        raise ValueError(f"{TRACEMALLOC_INTERVAL_ENV} must be a number > 0")
    import tracemalloc

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"tracemalloc-{process}-{os.getpid()}.txt")
    tracemalloc.start(1)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]

    def _loop() -> None:
        time.sleep(interval_s)
        base = tracemalloc.take_snapshot().filter_traces(ignore)
        t0 = time.monotonic()
        while True:
            time.sleep(interval_s)
            snap = tracemalloc.take_snapshot().filter_traces(ignore)
            diffs = snap.compare_to(base, "lineno")
            current, peak = tracemalloc.get_traced_memory()
            lines = [
                f"== {process} t+{time.monotonic() - t0:.0f}s since the baseline: traced "
                f"{current / 2**20:.2f} MiB (peak {peak / 2**20:.2f})"
            ]
            lines += [str(d) for d in diffs[:25]]
            with open(path, "a") as fh:
                fh.write("\n".join(lines) + "\n\n")

    thread = threading.Thread(target=_loop, name="tracemalloc-dump", daemon=True)
    thread.start()
    return thread
