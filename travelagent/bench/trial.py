"""Closed-loop trials: C clients, each sending a message and awaiting its whole reply.

Every path is driven by the project's own asyncio clients (``AsyncGatewayClient``,
``AsyncRealtimeClient``); the floors answer the gateway frame, so the same client drives them.
Connecting and a few warm-up messages per client come first and are not counted; then every
client loops until the deadline. Latency is service time (``recv - send`` of the message
record); the rate is replies per second over the measured window.

``paired_closed_loop`` compares two configurations whose difference is small (stamping): both
fleets stay connected and take turns in short slices (A B B A ...), so a burst of background
load lands on both sides instead of deciding the comparison.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from travelagent.bench.stats import percentile
from travelagent.client.prompts import prompt_cycle
from travelagent.client.records import MessageRecord


class Client(Protocol):
    async def connect(self) -> None: ...
    async def request(self, text: str) -> MessageRecord: ...
    async def close(self) -> None: ...


ClientFactory = Callable[[str], Client]


@dataclass
class TrialResult:
    case: str
    clients: int
    round: int
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rate_per_s: float
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fleet:
    """C connected clients of one configuration, and what they measured so far."""

    make_client: ClientFactory
    clients: int
    user_prefix: str
    conns: list[Client] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _sent: int = 0

    async def connect(self, warmup: int) -> None:
        self.conns = [self.make_client(f"{self.user_prefix}-{i}") for i in range(self.clients)]
        await asyncio.gather(*(c.connect() for c in self.conns))
        self._prompts = [prompt_cycle(seed=i) for i in range(self.clients)]
        for _ in range(warmup):
            await asyncio.gather(*(self._request(i) for i in range(self.clients)))

    async def _request(self, i: int) -> MessageRecord:
        prompts = self._prompts[i]
        self._sent += 1
        return await self.conns[i].request(prompts[self._sent % len(prompts)])

    async def run_for(self, duration_s: float) -> None:
        """Every client in a closed loop until the deadline; adds to the measurements."""
        deadline = time.perf_counter() + duration_s

        async def loop(i: int) -> None:
            while time.perf_counter() < deadline:
                rec = await self._request(i)
                if rec.status == "ok" and rec.recv_ns is not None:
                    self.latencies_ms.append((rec.recv_ns - rec.send_ns) / 1e6)
                    continue
                self.errors.append(f"{rec.status}: {rec.error}")
                if rec.status == "lost" or "connection closed" in rec.error:
                    return  # this client's socket is gone: stop it, do not spin on errors

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(self.clients)))
        self.seconds += time.perf_counter() - t0

    async def close(self) -> None:
        # All at once: a peer slow to answer the close handshake costs its timeout once, not
        # once per client.
        await asyncio.gather(*(c.close() for c in self.conns), return_exceptions=True)

    def result(self, case: str, round_no: int) -> TrialResult:
        lat = self.latencies_ms
        return TrialResult(
            case=case, clients=self.clients, round=round_no, ok=len(lat),
            failed=len(self.errors), seconds=self.seconds, p50_ms=percentile(lat, 50),
            p99_ms=percentile(lat, 99),
            rate_per_s=len(lat) / self.seconds if self.seconds > 0 else 0.0,
            errors=tuple(sorted(set(self.errors)))[:5],
        )  # fmt: skip


async def closed_loop(
    make_client: ClientFactory,
    *,
    case: str,
    clients: int,
    round_no: int,
    duration_s: float,
    warmup: int = 3,
    user_prefix: str = "bench",
) -> TrialResult:
    """Run one trial and return its latency percentiles and rate."""
    fleet = Fleet(make_client, clients, user_prefix)
    try:
        await fleet.connect(warmup)
        await fleet.run_for(duration_s)
    finally:
        await fleet.close()
    return fleet.result(case, round_no)


async def paired_closed_loop(
    a: tuple[str, ClientFactory],
    b: tuple[str, ClientFactory],
    *,
    clients: int,
    round_no: int,
    duration_s: float,
    slices: int = 8,
    warmup: int = 3,
    user_prefix: str = "bench",
) -> tuple[TrialResult, TrialResult]:
    """Two configurations, ``duration_s`` each, alternating in ``slices`` turns (A B B A ...)."""
    fleets = [Fleet(f, clients, f"{user_prefix}-{name}") for name, f in (a, b)]
    try:
        for fleet in fleets:
            await fleet.connect(warmup)
        for k in range(slices):
            order = fleets if k % 2 == 0 else fleets[::-1]
            for fleet in order:
                await fleet.run_for(duration_s / slices)
    finally:
        for fleet in fleets:
            await fleet.close()
    return fleets[0].result(a[0], round_no), fleets[1].result(b[0], round_no)
