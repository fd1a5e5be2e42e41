"""Timers that fire loop callbacks at a monotonic nanosecond deadline.

Why a thread: asyncio's own timers wake through ``epoll_wait``, whose timeout Python rounds *up*
to whole milliseconds, so ``loop.call_at`` fires 0-1 ms late (about 0.5 ms on average). That
alone misses the link's accuracy target (p50 within 0.3 ms). ``ThreadTimer`` sleeps in a
dedicated thread (a condition wait, i.e. ``clock_nanosleep`` precision, tens of microseconds)
and hands due callbacks to the loop with ``call_soon_threadsafe``, which wakes the loop at once
through its self-pipe. ``LoopTimer`` is the plain asyncio version, kept for comparison in the
benchmark (``python -m travelagent.link.bench``) and for callers without threads.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

Callback = Callable[[], None]


def mono_ns() -> int:
    """The scheduling clock (monotonic, never steps); trace stamps use ``now_ns`` instead."""
    return time.monotonic_ns()


class Timer(Protocol):
    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None: ...

    def close(self) -> None: ...


class LoopTimer:
    """Plain ``loop.call_at``: simple, ~1 ms granular on Linux."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_at_ns(self, deadline_ns: int, callback: Callback) -> None:
        delay_s = (deadline_ns - mono_ns()) / 1e9
        if delay_s <= 0:
            self._loop.call_soon(callback)
        else:
            self._loop.call_later(delay_s, callback)

    def close(self) -> None:
        pass


class ThreadTimer:
    """A heap of deadlines served by one daemon thread; callbacks run in the loop's thread."""

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
    for callback in callbacks:
        callback()
