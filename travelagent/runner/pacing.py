"""Open-loop send schedules; pure (times in, times out), so pacing is tested without sockets.

In an open loop a user sends on a fixed schedule whatever the replies do. Each send keeps its
*intended* time, so latency can be reported as service time (``recv - send``) and corrected for
coordinated omission (``recv - intended``). When the sender wakes late (a busy process, a slow
socket write) it still sends every overdue message at once, each with its own intended time, and
counts the send as late: the schedule is kept, never silently stretched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_LATE_TOLERANCE_NS = 5_000_000  # 5 ms: below this a wake-up is on time


@dataclass
class Pacer:
    """Intended send times ``start_ns + k / rate`` (uniform) or with exponential gaps (poisson)."""

    rate_per_s: float
    start_ns: int
    arrivals: str = "uniform"  # uniform | poisson
    seed: int | None = None
    late_tolerance_ns: int = DEFAULT_LATE_TOLERANCE_NS
    sent: int = 0
    late: int = 0
    _next_ns: int = field(init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {self.rate_per_s}")
        if self.arrivals not in ("uniform", "poisson"):
            raise ValueError(f"arrivals must be 'uniform' or 'poisson', got {self.arrivals!r}")
        self._rng = random.Random(self.seed)
        self._next_ns = self.start_ns

    @property
    def interval_ns(self) -> float:
        return 1e9 / self.rate_per_s

    @property
    def next_ns(self) -> int:
        """Intended time of the next send."""
        return self._next_ns

    def _advance(self) -> None:
        gap = self.interval_ns
        if self.arrivals == "poisson":
            gap = self._rng.expovariate(1.0) * gap
        self._next_ns += max(int(gap), 1)

    def due(self, now_ns: int) -> list[int]:
        """Intended times of every send due at ``now_ns`` (oldest first); counts late ones."""
        out = []
        while self._next_ns <= now_ns:
            if now_ns - self._next_ns > self.late_tolerance_ns:
                self.late += 1
            out.append(self._next_ns)
            self.sent += 1
            self._advance()
        return out

    def sleep_s(self, now_ns: int) -> float:
        """How long to sleep before the next send is due (0 if already due)."""
        return max(self._next_ns - now_ns, 0) / 1e9


def start_offset_s(user_number: int, users: int, spread_ms: float) -> float:
    """How long closed-loop user ``user_number`` (0-based) waits before its first send, so that
    ``users`` users starting together send their first messages ``spread_ms / users`` apart
    over ``spread_ms`` instead of all in the same instant.

    Without it a light-load cell opens with a burst: every user's first message (each creating
    an agent, each opening its connections) reaches the worker, the agents and the realtime
    service at once and queues behind the others, a queue that no steady light load has and
    that weighs on a short cell's p50. User ``k`` waits ``(k mod users) * spread_ms / users``;
    ``spread_ms`` 0 (or one user) starts everyone at once, as before."""
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if not spread_ms >= 0 or spread_ms == float("inf"):
        raise ValueError(f"spread_ms must be a finite number >= 0, got {spread_ms}")
    if user_number < 0:
        raise ValueError(f"user_number must be >= 0, got {user_number}")
    return (user_number % users) * spread_ms / users / 1000
