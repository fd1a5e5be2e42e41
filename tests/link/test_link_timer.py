from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from travelagent.link.timer import LoopTimer, ThreadTimer, Timer, TimerfdTimer, mono_ns

KINDS: dict[str, Callable[[asyncio.AbstractEventLoop], Timer]] = {
    "timerfd": TimerfdTimer,
    "thread": ThreadTimer,
    "loop": LoopTimer,
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_timer_fires_every_callback_in_deadline_order_never_early(
    kind: Any, tf: float
) -> None:
    loop = asyncio.get_running_loop()
    timer = KINDS[kind](loop)
    rng = random.Random(5)
    start = mono_ns()
    deadlines = [start + rng.randrange(1, 60) * 1_000_000 for _ in range(200)]
    fired: list[tuple[int, int]] = []  # (deadline, when it ran)
    done = asyncio.Event()

    def make(deadline: int) -> Callable[[], None]:
        def callback() -> None:
            fired.append((deadline, mono_ns()))
            if len(fired) == len(deadlines):
                done.set()

        return callback

    try:
        for d in deadlines:
            timer.call_at_ns(d, make(d))
        await asyncio.wait_for(done.wait(), 5 * tf)
    finally:
        timer.close()
    assert [d for d, _ in fired] == sorted(deadlines)
    # asyncio converts to float seconds, which may round a hair early; the others never fire early.
    slack_ns = 50_000 if kind == "loop" else 0
    assert all(ran >= deadline - slack_ns for deadline, ran in fired)


async def test_past_deadline_fires_promptly(tf: float) -> None:
    loop = asyncio.get_running_loop()
    timer = TimerfdTimer(loop)
    fired = asyncio.Event()
    try:
        timer.call_at_ns(mono_ns() - 5_000_000, fired.set)
        await asyncio.wait_for(fired.wait(), 1 * tf)
    finally:
        timer.close()


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_callback_that_raises_does_not_drop_the_others_due_with_it(
    kind: Any, tf: float, caplog: pytest.LogCaptureFixture
) -> None:
    # A link's flush that raised (write_eof on a socket already gone: ENOTCONN) used to end the
    # timerfd wake-up, so the other flushes due with it never ran and their connections
    # (a long-lived publisher socket among them) stalled for good.
    loop = asyncio.get_running_loop()
    timer = KINDS[kind](loop)
    ran: list[int] = []
    done = asyncio.Event()

    def failing() -> None:
        raise OSError(107, "Transport endpoint is not connected")

    def make(k: int) -> Callable[[], None]:
        def callback() -> None:
            ran.append(k)
            if len(ran) == 3:
                done.set()

        return callback

    handler_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: handler_errors.append(ctx))
    try:
        deadline = mono_ns() + 5_000_000
        timer.call_at_ns(deadline, make(1))
        timer.call_at_ns(deadline, failing)
        timer.call_at_ns(deadline, make(2))
        timer.call_at_ns(deadline, make(3))
        await asyncio.wait_for(done.wait(), 2 * tf)
        # and the timer still serves later deadlines
        later = asyncio.Event()
        timer.call_at_ns(mono_ns() + 1_000_000, later.set)
        await asyncio.wait_for(later.wait(), 2 * tf)
    finally:
        loop.set_exception_handler(None)
        timer.close()
    assert sorted(ran) == [1, 2, 3]
    if kind != "loop":  # the loop timer's callbacks are asyncio's own handles
        assert "Transport endpoint is not connected" in caplog.text
