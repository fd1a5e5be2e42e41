"""The round-trip section: floors, gateway (with and without stamps) and every realtime mode.

Trials are interleaved: round by round, client count by client count, every case runs once, in
an order rotated each round so that no case always goes first (or last, after the others have
warmed the machine). Ratios between cases are then taken within a round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from travelagent.bench import clients as client_factories
from travelagent.bench.trial import ClientFactory, TrialResult, closed_loop, paired_closed_loop


@dataclass(frozen=True)
class Case:
    name: str
    factory: ClientFactory
    clients: tuple[int, ...]


def schedule(
    cases: list[Case], counts: tuple[int, ...], rounds: int
) -> list[tuple[int, int, Case]]:
    """(round, clients, case) in run order: interleaved, rotated by one case per round."""
    out = []
    for r in range(rounds):
        for c in counts:
            here = [case for case in cases if c in case.clients]
            k = r % len(here) if here else 0
            out += [(r, c, case) for case in here[k:] + here[:k]]
    return out


async def run_roundtrips(
    cases: list[Case],
    *,
    counts: tuple[int, ...],
    rounds: int,
    duration_s: float,
    warmup: int,
    progress: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    results = []
    for r, c, case in schedule(cases, counts, rounds):
        res = await closed_loop(
            case.factory, case=case.name, clients=c, round_no=r, duration_s=duration_s,
            warmup=warmup, user_prefix=f"b{r}-{case.name}-{c}",
        )  # fmt: skip
        results.append(res)
        if progress is not None:
            progress(res)
    return results


async def run_stamping(
    gateway_url: str,
    *,
    counts: tuple[int, ...],
    rounds: int,
    duration_s: float,
    warmup: int,
    progress: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    """The gateway with the client's trace (``gateway``) and without (``gateway-nostamps``),
    paired slice by slice; which goes first alternates by round."""
    traced = ("gateway", client_factories.gateway(gateway_url))
    untraced = ("gateway-nostamps", client_factories.gateway(gateway_url, stamps=False))
    results = []
    for r in range(rounds):
        for c in counts:
            a, b = (traced, untraced) if r % 2 == 0 else (untraced, traced)
            pair = await paired_closed_loop(
                a, b, clients=c, round_no=r, duration_s=duration_s, warmup=warmup,
                user_prefix=f"s{r}-{c}",
            )  # fmt: skip
            for res in sorted(pair, key=lambda t: t.case):
                res.case = f"stamping/{res.case}"
                results.append(res)
                if progress is not None:
                    progress(res)
    return results
