"""One closed-loop trial: C clients, each sending a message and awaiting its whole reply.

Every path is driven by the project's own asyncio clients (``AsyncGatewayClient``,
``AsyncRealtimeClient``); the floors answer the gateway frame, so the same client drives them.
Connecting and a few warm-up messages per client come first and are not counted; then every
client loops until the deadline. Latency is service time (``recv - send`` of the message
record); the rate is replies per second over the measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
    conns = [make_client(f"{user_prefix}-{i}") for i in range(clients)]
    latencies_ms: list[float] = []
    errors: list[str] = []
    try:
        await asyncio.gather(*(c.connect() for c in conns))
        prompts = [prompt_cycle(seed=i) for i in range(clients)]

        async def warm(i: int) -> None:
            for k in range(warmup):
                await conns[i].request(prompts[i][k % len(prompts[i])])

        await asyncio.gather(*(warm(i) for i in range(clients)))
        deadline = time.perf_counter() + duration_s

        async def loop(i: int) -> None:
            k = warmup
            while time.perf_counter() < deadline:
                rec = await conns[i].request(prompts[i][k % len(prompts[i])])
                k += 1
                if rec.status == "ok" and rec.recv_ns is not None:
                    latencies_ms.append((rec.recv_ns - rec.send_ns) / 1e6)
                else:
                    errors.append(f"{rec.status}: {rec.error}")

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        seconds = time.perf_counter() - t0
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                await c.close()
    return TrialResult(
        case=case,
        clients=clients,
        round=round_no,
        ok=len(latencies_ms),
        failed=len(errors),
        seconds=seconds,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
        rate_per_s=len(latencies_ms) / seconds if seconds > 0 else 0.0,
        errors=tuple(sorted(set(errors)))[:5],
    )
