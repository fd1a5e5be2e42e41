"""Pure delivery scheduling for one direction of a shaped link: no sockets, no clock.

Design rules:
- Every chunk read from one side gets a delivery time computed from its *arrival* time, so a
  burst of chunks sent together arrives together one delay later (delays never add up).
- Order is preserved: with jitter, ``deliver_at = max(arrival + delay + jitter, previous)``.
- Bandwidth is a serialisation delay: the direction is busy sending ``bytes * 8 / kbps`` ms per
  chunk, one chunk after another, before the propagation delay starts.
- The connection set-up cost holds a new connection's bytes until ``opened + setup_rtts * RTT``
  (RTT = 2 x one-way delay), as a TCP (1 RTT) or TCP+TLS (2-3 RTTs) handshake would.
- Times are integer nanoseconds on a monotonic clock supplied by the caller.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from travelagent.vocab import JITTER_KINDS, JitterKind

PARETO_ALPHA = 2.5  # tail index of the pareto jitter; finite mean and variance, long tail


class ShapeError(ValueError):
    """A link shape has an invalid value."""


@dataclass(frozen=True)
class LinkShape:
    """How one link delays traffic; the same shape applies to each direction on its own."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter: JitterKind = "normal"
    setup_rtts: float = 1.0
    bandwidth_kbps: float = 0.0  # 0 = unlimited

    def __post_init__(self) -> None:
        for key in ("delay_ms", "jitter_ms", "setup_rtts", "bandwidth_kbps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ShapeError(f"{key} must be a number, got {value!r}")
            if value < 0:
                raise ShapeError(f"{key} must not be negative, got {value!r}")
        if self.jitter not in JITTER_KINDS:
            raise ShapeError(
                f"jitter must be one of {', '.join(JITTER_KINDS)}; got {self.jitter!r}"
            )

    @property
    def rtt_ns(self) -> int:
        return int(2 * self.delay_ms * 1_000_000)

    @property
    def setup_ns(self) -> int:
        return int(self.setup_rtts * self.rtt_ns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> LinkShape:
        """A copy with ``changes`` applied; unknown keys are an error naming the valid ones."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            valid = ", ".join(sorted(asdict(self)))
            raise ShapeError(f"unknown shape key(s) {sorted(unknown)}; valid keys: {valid}")
        return replace(self, **changes)


class JitterSampler:
    """Seeded jitter draws in nanoseconds for a named distribution.

    normal: N(0, jitter_ms); uniform: U(-jitter_ms, +jitter_ms); pareto: a non-negative
    heavy-tailed draw with mean jitter_ms (occasional large stalls, like queueing on a busy
    router). The caller clamps so a chunk is never delivered before it arrived.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def draw_ns(self, kind: str, jitter_ms: float) -> int:
        if jitter_ms <= 0:
            return 0
        if kind == "normal":
            value_ms = self._rng.gauss(0.0, jitter_ms)
        elif kind == "uniform":
            value_ms = self._rng.uniform(-jitter_ms, jitter_ms)
        elif kind == "pareto":
            # paretovariate >= 1 with mean alpha/(alpha-1); shift to 0 and rescale to mean 1.
            value_ms = (self._rng.paretovariate(PARETO_ALPHA) - 1.0) * (PARETO_ALPHA - 1.0)
            value_ms *= jitter_ms
        else:
            raise ShapeError(f"jitter must be one of {', '.join(JITTER_KINDS)}; got {kind!r}")
        return int(value_ms * 1_000_000)


def serialisation_ns(nbytes: int, bandwidth_kbps: float) -> int:
    """Time to put ``nbytes`` on a wire of ``bandwidth_kbps`` (kilobits per second)."""
    if bandwidth_kbps <= 0:
        return 0
    return int(nbytes * 8 / (bandwidth_kbps * 1000) * 1_000_000_000)


class DirectionSchedule:
    """Delivery times for the chunks of one direction of one connection, in arrival order."""

    def __init__(self, shape: LinkShape, opened_ns: int, sampler: JitterSampler) -> None:
        self.shape = shape
        self.sampler = sampler
        # Bytes of a new connection wait for the handshake the proxy stands in for.
        self.hold_until_ns = opened_ns + shape.setup_ns
        self._busy_until_ns = 0  # end of the previous chunk's serialisation
        self._last_deliver_ns = 0

    def set_shape(self, shape: LinkShape) -> None:
        """Change the shape for chunks arriving from now on (the set-up hold is kept)."""
        self.shape = shape

    def deliver_at(self, arrival_ns: int, nbytes: int) -> int:
        shape = self.shape
        start_ns = max(arrival_ns, self.hold_until_ns)
        if shape.bandwidth_kbps > 0:
            start_ns = max(start_ns, self._busy_until_ns) + serialisation_ns(
                nbytes, shape.bandwidth_kbps
            )
            self._busy_until_ns = start_ns
        delay_ns = int(shape.delay_ms * 1_000_000)
        delay_ns += self.sampler.draw_ns(shape.jitter, shape.jitter_ms)
        deliver_ns = start_ns + max(0, delay_ns)
        deliver_ns = max(deliver_ns, self._last_deliver_ns)  # never reorder
        self._last_deliver_ns = deliver_ns
        return deliver_ns
