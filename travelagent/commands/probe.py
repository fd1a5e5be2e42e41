"""``travelagent probe``: a quick measurement with a printed summary.

N messages from C concurrent clients on one or more paths, into one run under
``data/runs/<id>/`` (one cell per path), then p50/p90/p99 of end to end, first reply and every
hop. Against running services (``--url``, ``--realtime-url``), or a topology this command starts
and stops itself (``--scenario NAME``, restarted per cell when the worker's settings differ).
``--all-paths`` probes the gateway, every publish mode streamed and not, and the hybrid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from travelagent.vocab import ARCHES, PUBLISH_MODES, Arch, PublishMode


@dataclass(frozen=True)
class PathSpec:
    arch: Arch
    publish: PublishMode | None  # None: whatever the worker is configured with
    stream: bool | None  # None: the worker's default

    @property
    def cell(self) -> str:
        parts: list[str] = [self.arch]
        if self.arch == "realtime" and self.publish:
            parts.append(self.publish)
        if self.stream is not None:
            parts.append("stream" if self.stream else "nostream")
        return "-".join(parts)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="gateway base URL (default ws://127.0.0.1:8787)")
    p.add_argument("--realtime-url", default=None,
                   help="realtime client URL (default ws://127.0.0.1:8000)")  # fmt: skip
    p.add_argument("--scenario", default=None, help="start this scenario's topology for the probe")
    p.add_argument("--arch", choices=ARCHES, default="gateway")
    p.add_argument("--publish", choices=PUBLISH_MODES, default=None)
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--all-paths", action="store_true",
                   help="gateway, realtime in every publish mode with and without streaming, "
                        "and hybrid, as cells of one run (needs --scenario)")  # fmt: skip
    p.add_argument("--profile", default=None, help="LLM profile (with --scenario)")
    p.add_argument("--messages", type=int, default=100, help="messages per path (default 100)")
    p.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="unrecorded messages per client first")
    p.add_argument("--same-agent", action="store_true", help="all clients talk to one agent")
    p.add_argument("--out", type=Path, default=Path("data/runs"), help="where the run goes")
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _paths(args: argparse.Namespace) -> list[PathSpec]:
    if args.all_paths:
        out = [PathSpec("gateway", None, True), PathSpec("gateway", None, False)]
        out += [PathSpec("realtime", m, s) for m in PUBLISH_MODES for s in (False, True)]
        return [*out, PathSpec("hybrid", None, True)]
    return [PathSpec(args.arch, args.publish, args.stream)]


def main(args: argparse.Namespace) -> int:
    if args.messages < 1 or args.clients < 1:
        print("travelagent probe: --messages and --clients must be at least 1", file=sys.stderr)
        return 2
    if args.all_paths and not args.scenario:
        print("travelagent probe: --all-paths needs --scenario (the worker is restarted "
              "per publish mode)", file=sys.stderr)  # fmt: skip
        return 2
    from travelagent.client.records import finalize_run
    from travelagent.client.runinfo import iso_now, new_run_id, write_run_json

    run_dir = args.out / new_run_id("probe-")
    config = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in vars(args).items() if not k.startswith("_")}  # fmt: skip
    write_run_json(run_dir, {"kind": "probe", "status": "running", "started": iso_now(),
                             "config": config})  # fmt: skip
    cells: list[dict[str, Any]] = []
    status = "complete"
    try:
        for spec in _paths(args):
            with _services(args, spec) as (urls, scenario):
                cell = asyncio.run(probe_path(spec, urls, run_dir, args))
                cell["scenario"] = scenario
                cell["scenario_name"] = scenario["name"] if scenario else None
                cells.append(cell)
    except KeyboardInterrupt:
        status = "interrupted"
    except (OSError, RuntimeError) as err:
        print(f"travelagent probe: {err}", file=sys.stderr)
        status = "failed"
    finally:
        finalize_run(run_dir)
        write_run_json(run_dir, {"status": status, "ended": iso_now(), "cells": cells})
    if cells:
        print(summary_text(run_dir))
    print(f"\nrun written to {run_dir}")
    ok = sum(c["statuses"].get("ok", 0) for c in cells)
    return 0 if status == "complete" and ok > 0 else 1


@contextmanager
def _services(
    args: argparse.Namespace, spec: PathSpec
) -> Iterator[tuple[dict[str, str], dict[str, Any] | None]]:
    """URLs and secrets to probe ``spec`` with: a fresh topology, or the given URLs."""
    if not args.scenario:
        from travelagent.config import JWT_SECRET_ENV, secret

        urls = {"gateway": args.url or "ws://127.0.0.1:8787",
                "realtime": args.realtime_url or "ws://127.0.0.1:8000",
                "jwt_secret": secret(JWT_SECRET_ENV) if spec.arch != "gateway" else ""}  # fmt: skip
        yield urls, None
        return
    import dataclasses

    from travelagent.config import JWT_SECRET_ENV
    from travelagent.topology.launcher import Topology
    from travelagent.topology.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    worker = scenario.worker
    if spec.publish:
        worker = dataclasses.replace(worker, publish=spec.publish)
    if spec.stream is not None:
        worker = dataclasses.replace(worker, stream=spec.stream)
    llm = scenario.llm
    if args.profile:
        llm = dataclasses.replace(llm, profile=args.profile)
    scenario = dataclasses.replace(scenario, worker=worker, llm=llm)
    with Topology(scenario, run_dir=(args.out / ".topologies" / spec.cell).resolve()) as topo:
        urls = dict(topo.urls)
        urls["jwt_secret"] = topo.secrets[JWT_SECRET_ENV]
        yield urls, scenario.to_dict()


async def probe_path(
    spec: PathSpec, urls: dict[str, str], run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from tqdm import tqdm

    from travelagent.client.prompts import prompt_cycle
    from travelagent.client.records import Recorder
    from travelagent.client.runinfo import iso_now

    recorder = Recorder(run_dir, tag=f"{spec.cell}-{os.getpid()}")
    counts = [args.messages // args.clients + (i < args.messages % args.clients)
              for i in range(args.clients)]  # fmt: skip
    statuses: dict[str, int] = {}
    started = iso_now()
    bar = tqdm(total=args.messages, desc=spec.cell, unit="msg", disable=args.quiet,
               file=sys.stderr)  # fmt: skip
    make = _client_factory(spec, urls, run_dir.name, args)

    async def one_client(i: int, n: int) -> None:
        user = "probe-0" if args.same_agent else f"probe-{spec.cell}-{i}"
        prompts = prompt_cycle(seed=i)
        async with make(user) as client:
            for k in range(args.warmup):
                await client.request(prompts[k % len(prompts)])
            for k in range(n):
                rec = await client.request(prompts[k % len(prompts)])
                recorder.add(rec)
                statuses[rec.status] = statuses.get(rec.status, 0) + 1
                bar.update()

    try:
        await asyncio.gather(*(one_client(i, n) for i, n in enumerate(counts) if n))
    finally:
        bar.close()
        recorder.flush()
    return {"cell": spec.cell, "arch": spec.arch, "publish": spec.publish or "",
            "streaming": bool(spec.stream), "status": "ok", "statuses": statuses,
            "shape": {"kind": "closed", "users": args.clients}, "messages": sum(counts),
            "started": started, "ended": iso_now()}  # fmt: skip


def _client_factory(
    spec: PathSpec, urls: dict[str, str], run_id: str, args: argparse.Namespace
) -> Callable[[str], Any]:
    from travelagent.client.aio_gateway import AsyncGatewayClient
    from travelagent.client.aio_hybrid import AsyncHybridClient
    from travelagent.client.aio_realtime import AsyncRealtimeClient

    common = {"run": run_id, "cell": spec.cell, "timeout_s": args.timeout_s}
    if spec.arch == "gateway":
        return lambda user: AsyncGatewayClient(urls["gateway"], user, stream=spec.stream,
                                               jwt_secret=urls.get("jwt_secret", ""),
                                               **common)  # fmt: skip
    if spec.arch == "realtime":
        return lambda user: AsyncRealtimeClient(
            urls["realtime"], user, jwt_secret=urls["jwt_secret"], publish=spec.publish or "",
            stream=bool(spec.stream), **common,
        )  # fmt: skip
    return lambda user: AsyncHybridClient(
        urls["gateway"], urls["realtime"], user, "probe", jwt_secret=urls["jwt_secret"],
        stream=spec.stream, **common,
    )  # fmt: skip


def summary_text(run_dir: Path) -> str:
    """Per cell: p50/p90/p99/max of end to end, first reply and every hop, in path order."""
    import numpy as np

    from travelagent.analysis.load import load_run

    run = load_run(run_dir)
    msgs, hops = run.messages, run.hops
    lines: list[str] = []

    def row(label: str, values: Any) -> None:
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            return
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        lines.append(f"{label:38} {v.size:6d} {p50:9.3f} {p90:9.3f} {p99:9.3f} {v.max():9.3f}")

    for cell in msgs["cell"].drop_duplicates():
        m = msgs[msgs["cell"] == cell]
        lines.append(f"\n{cell}")
        lines.append(f"{'':38} {'n':>6} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}")
        row("end to end (recv - send)", m["service_ms"].dropna().to_numpy(dtype=float))
        row("first reply (first - send)", m["ttfc_ms"].dropna().to_numpy(dtype=float))
        h = hops[hops["cell"] == cell] if not hops.empty else hops
        if not h.empty:
            for hop in h.groupby("hop")["idx"].median().sort_values().index:
                sel = h[h["hop"] == hop]
                row(f"  {hop} [{sel['category'].iloc[0]}]", sel["dur_ms"].to_numpy(dtype=float))
        counts = m["status"].value_counts().to_dict()
        lines.append("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return "\n".join(lines).lstrip("\n")
