"""The links section: the existing link benchmark (``travelagent.link.bench``), run per round.

At zero configured delay the link's own cost is its one-way p50 minus the same traffic's p50
straight to the echo server; at 10 ms and 1,000 messages/s the error is the measured one-way
delay (p50, p99) minus the configured one. One direction is measured: client to server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from travelagent.link.bench import measure

SETTINGS: tuple[float, ...] = (0.0, 10.0)  # configured one-way delay, ms
RATE_PER_S = 1000.0


async def run_links(
    *,
    rounds: int,
    seconds: float,
    timer: str = "timerfd",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for r in range(rounds):
        order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
        for delay_ms in order:
            m = await measure(timer, delay_ms=delay_ms, rate=RATE_PER_S, seconds=seconds)
            out.append({"round": r, "delay_ms": delay_ms, "rate_per_s": RATE_PER_S,
                        "timer": timer, **m})  # fmt: skip
            if progress is not None:
                progress(out[-1])
    return out
