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
