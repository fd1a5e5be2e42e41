"""Timers that fire loop callbacks at a monotonic nanosecond deadline.

asyncio's own timers wake through ``epoll_wait``, whose timeout Python rounds *up* to whole
milliseconds, so ``loop.call_at`` fires 0-1 ms late (about 0.5 ms on average): that alone
misses the link's accuracy target (p50 within 0.3 ms of the configured delay). Three kinds,
compared by ``python -m travelagent.link.bench``:

- ``TimerfdTimer`` (default on Linux): a kernel ``timerfd`` registered in the loop. The kernel's
  high-resolution timer makes it readable at the deadline, the loop wakes as for a socket: no
  rounding, no extra thread, a single wake-up to be scheduled. Best median and tail.
- ``ThreadTimer`` (fallback): a daemon thread sleeps to the deadline and hands the callbacks to
  the loop with ``call_soon_threadsafe``. Good median, but two threads must be scheduled per
  deadline, so its tail grows on a busy machine.
- ``LoopTimer``: plain ``loop.call_at``, for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

Callback = Callable[[], None]
log = logging.getLogger(__name__)


def mono_ns() -> int:
    """The scheduling clock (monotonic, never steps); trace stamps use ``now_ns`` instead."""
    return time.monotonic_ns()


class Timer(Protocol):
    # How early to ask for a wake-up so the write lands on time: the measured delay between a
    # deadline and the callback running in the loop (see the benchmark).
    lead_ns: int

    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None: ...

    def close(self) -> None: ...


class LoopTimer:
    """Plain ``loop.call_at``: simple, ~1 ms granular on Linux."""

    lead_ns = 0  # it is late anyway: asking earlier would only deliver early

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None:
        # loop.time() is time.monotonic(), the same clock as mono_ns(). Past deadlines also go
        # through call_at, so they keep their order with timers already in the loop's heap.
        self._loop.call_at(deadline_ns / 1e9, callback)

    def close(self) -> None:
        pass


class ThreadTimer:
    """A heap of deadlines served by one daemon thread; callbacks run in the loop's thread."""

    lead_ns = 120_000  # thread wake-up, GIL hand-over, self-pipe, loop wake-up

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[int, int, Callback]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="link-timer", daemon=True)
        self._thread.start()

    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None:
        seq = next(self._seq)
        with self._cond:
            heapq.heappush(self._heap, (deadline_ns, seq, callback))
            if self._heap[0][1] == seq:  # new earliest deadline: wake the thread to re-plan
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while True:
            due: list[Callback] = []
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait_ns = self._heap[0][0] - mono_ns()
                    if wait_ns <= 0:
                        break
                    self._cond.wait(wait_ns / 1e9)
                if self._closed:
                    return
                now = mono_ns()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            try:
                self._loop.call_soon_threadsafe(_run_all, due)
            except RuntimeError:  # the loop closed under us: nothing left to deliver to
                return


def _run_all(callbacks: list[Callback]) -> None:
    """Run every callback of one wake-up, each on its own: one that raises is logged and the
    others still run (a callback dropped here would leave its connection waiting forever)."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("link timer callback %r failed", callback)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create  # noqa: B018 - present on Linux >= 2.6.25
    except (OSError, AttributeError):
        return None
    return libc


class TimerfdTimer:
    """Linux ``timerfd`` in the event loop itself: nanosecond deadlines, one wake-up, no thread.

    The kernel's high-resolution timer makes the fd readable at the deadline, and the loop
    (already waiting in ``epoll``) wakes for it as for any socket, so there is no 1 ms rounding
    and no second thread to be scheduled.
    """

    lead_ns = 30_000  # one kernel wake-up of the loop

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        libc = _libc()
        if libc is None:
            raise OSError("timerfd is not available on this system")
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._libc = libc
        self._fd = fd
        self._loop = loop
        self._heap: list[tuple[int, int, Callback]] = []
        self._seq = itertools.count()
        self._armed_ns = 0  # deadline the fd is set for (0: disarmed)
        loop.add_reader(fd, self._fire)

    def _arm(self, deadline_ns: int) -> None:
        spec = _Itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(max(deadline_ns, 1), 1_000_000_000)
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed_ns = deadline_ns

    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None:
        heapq.heappush(self._heap, (deadline_ns, next(self._seq), callback))
        if self._armed_ns == 0 or deadline_ns < self._armed_ns:
            self._arm(deadline_ns)

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; reading clears readiness
        except BlockingIOError:
            pass
        now = mono_ns()
        due: list[Callback] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        self._armed_ns = 0
        if self._heap:
            self._arm(self._heap[0][0])
        _run_all(due)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def best_timer(loop: asyncio.AbstractEventLoop) -> Timer:
    """``TimerfdTimer`` where the system has it (Linux), else ``ThreadTimer``."""
    try:
        return TimerfdTimer(loop)
    except OSError:
        return ThreadTimer(loop)
