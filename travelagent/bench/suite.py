"""The whole suite: settings, the services every section needs, and the sections in order."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from travelagent.bench import clients, services
from travelagent.bench.floors import FLOOR_KINDS, FloorServer
from travelagent.bench.links import run_links
from travelagent.bench.loadgen import STANDIN, run_loadgen
from travelagent.bench.memory import run_memory
from travelagent.bench.peer import PeerUnavailable, WranglerPeer
from travelagent.bench.report import PEER_CASE
from travelagent.bench.roundtrips import Case, run_roundtrips, run_stamping
from travelagent.bench.trial import TrialResult
from travelagent.runner.procs import ServedProcess
from travelagent.topology.launcher import Topology, _free_ports
from travelagent.vocab import PUBLISH_MODES

SECTIONS: tuple[str, ...] = ("roundtrip", "links", "memory", "loadgen")


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    duration_s: float = 1.2  # per round-trip trial, after connecting and warming up
    warmup: int = 2  # unmeasured messages per client before each trial
    counts: tuple[int, ...] = (1, 20, 50)
    stamp_counts: tuple[int, ...] = (1, 20)  # gateway without stamps at these client counts
    # Realtime at 50 clients: every non-streamed mode and the persistent socket streamed. Over
    # HTTP every chunk is one publish request: those two modes saturate at 20 clients already
    # (tens of msg/s, p50 near 0.5 s), and at 50 a trial would mostly measure a longer queue.
    realtime_50: tuple[str, ...] = (
        "realtime-http-new-nostream", "realtime-http-pooled-nostream",
        "realtime-ws-persistent-nostream", "realtime-ws-persistent-stream",
    )  # fmt: skip
    link_seconds: float = 2.5
    memory_connections: int = 10_000
    loadgen_users: int = 20
    loadgen_seconds: float = 4.0
    # The whole run stays under ten minutes: memory rounds (the last section, ~30-70 s each)
    # stop early, said in the table, when another would end after this.
    budget_s: float = 570.0
    peer: bool = True  # the wrangler dev peer, where Node.js and npm are present


FULL = Settings()
QUICK = Settings(rounds=1, duration_s=0.5, warmup=2, link_seconds=1.0, memory_connections=1000,
                 loadgen_seconds=3.0)  # fmt: skip


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _trial_line(res: TrialResult) -> None:
    log(f"  r{res.round} {res.case} @{res.clients}: p50 {res.p50_ms:.2f} ms, "
        f"p99 {res.p99_ms:.2f} ms, {res.rate_per_s:,.0f} msg/s"
        + (f", {res.failed} failed {list(res.errors)}" if res.failed else ""))  # fmt: skip


def _entry_line(entry: dict[str, Any]) -> None:
    shown = {k: (f"{v:,.3f}" if isinstance(v, float) else v) for k, v in entry.items()}
    log("  " + ", ".join(f"{k} {v}" for k, v in shown.items()))


PEER_NAME = "Cloudflare `wrangler dev` gateway peer"


async def run_suite(
    settings: Settings, run_dir: Path, *, sections: tuple[str, ...] = SECTIONS
) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": asdict(settings), "notes": [], "skipped": []}
    timings: dict[str, float] = {}
    deadline = time.perf_counter() + settings.budget_s
    async with contextlib.AsyncExitStack() as stack:
        gateway: Topology | None = None
        if "roundtrip" in sections or "loadgen" in sections:
            gateway = await stack.enter_async_context(
                services.topology(services.bench_scenario("gateway"), run_dir)
            )
        if "roundtrip" in sections:
            t0 = time.perf_counter()
            assert gateway is not None
            results["roundtrips"] = await _roundtrips(settings, run_dir, gateway, stack, results)
            timings["roundtrip"] = time.perf_counter() - t0
        if "loadgen" in sections:
            t0 = time.perf_counter()
            assert gateway is not None
            log("load generator: Locust and the asyncio client, stand-in and gateway")
            port = _free_ports(1)[0]
            standin = ServedProcess([str(STANDIN), "--port", str(port)],
                                    f"http://127.0.0.1:{port}/healthz")  # fmt: skip
            with standin:
                targets = {"standin": f"ws://127.0.0.1:{port}/api/gateway/ws",
                           "gateway": gateway.urls["gateway"]}  # fmt: skip
                results["loadgen"] = await run_loadgen(
                    targets, rounds=settings.rounds, users=settings.loadgen_users,
                    seconds=settings.loadgen_seconds, run_dir=run_dir, progress=_entry_line,
                )  # fmt: skip
            timings["loadgen"] = time.perf_counter() - t0
    if "links" in sections:
        t0 = time.perf_counter()
        log("links: zero delay and 10 ms at 1,000 msg/s")
        results["links"] = await run_links(
            rounds=settings.rounds, seconds=settings.link_seconds, progress=_entry_line
        )
        timings["links"] = time.perf_counter() - t0
    if "memory" in sections:
        t0 = time.perf_counter()
        log(f"memory: {settings.memory_connections:,} idle connections, gateway and realtime")
        results["memory"] = await run_memory(
            rounds=settings.rounds, connections=settings.memory_connections, run_dir=run_dir,
            progress=_entry_line, deadline=deadline,
        )  # fmt: skip
        done = len({m["round"] for m in results["memory"]})
        if done < settings.rounds:
            note = (f"memory: {done} of {settings.rounds} rounds, another would have ended past "
                    f"the {settings.budget_s:.0f} s budget")  # fmt: skip
            results["notes"].append(note)
            log(note)
        timings["memory"] = time.perf_counter() - t0
    results["section_seconds"] = timings
    return results


async def _roundtrips(
    settings: Settings,
    run_dir: Path,
    gateway: Topology,
    stack: contextlib.AsyncExitStack,
    results: dict[str, Any],
) -> list[dict[str, Any]]:
    counts = settings.counts
    cases: list[Case] = []
    for kind in FLOOR_KINDS:
        floor = stack.enter_context(FloorServer(kind))
        cases.append(Case(f"floor-{kind}", clients.gateway(floor.url), counts))
    url = gateway.urls["gateway"]
    cases.append(Case("gateway", clients.gateway(url), counts))
    if not settings.peer:
        results["skipped"].append((PEER_NAME, "--no-peer"))
    else:
        try:
            peer = WranglerPeer(run_dir / "wrangler")
            await asyncio.to_thread(peer.__enter__)  # installs wrangler on first use: minutes
            stack.callback(peer.stop)
            cases.append(Case(PEER_CASE, clients.gateway(peer.url), counts))
        except PeerUnavailable as err:
            results["skipped"].append((PEER_NAME, str(err)))
            log(f"skipped: {PEER_NAME}: {err}")
    for publish in PUBLISH_MODES:
        for stream in (False, True):
            name = services.realtime_case(publish, stream)
            topo = await stack.enter_async_context(
                services.topology(
                    services.bench_scenario(name, publish=publish, stream=stream), run_dir
                )
            )
            factory = clients.realtime(topo.urls["realtime"], jwt_secret=services.jwt_secret(topo),
                                       publish=publish, stream=stream)  # fmt: skip
            at = tuple(c for c in counts if c < 50 or name in settings.realtime_50)
            cases.append(Case(name, factory, at))
    log(f"round trips: {len(cases)} cases, {settings.rounds} round(s) of "
        f"{settings.duration_s:g} s trials at {counts} clients")  # fmt: skip
    trials = await run_roundtrips(
        cases, counts=counts, rounds=settings.rounds, duration_s=settings.duration_s,
        warmup=settings.warmup, progress=_trial_line,
    )  # fmt: skip
    log(f"stamping: gateway with and without a client trace, alternating, at "
        f"{settings.stamp_counts} clients")  # fmt: skip
    trials += await run_stamping(
        url, counts=settings.stamp_counts, rounds=settings.rounds,
        duration_s=settings.duration_s, warmup=settings.warmup, progress=_trial_line,
    )  # fmt: skip
    return [t.to_dict() for t in trials]


def run(settings: Settings, run_dir: Path, sections: tuple[str, ...]) -> dict[str, Any]:
    return asyncio.run(run_suite(settings, run_dir, sections=sections))
