"""``travelagent probe``: N messages from C concurrent clients, a run on disk, a printed summary.

Against a running worker (``--url``), or a worker this command starts and stops itself
(``--spawn``, with ``--profile``). Each client has its own agent unless ``--same-agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

ARCHES = ("gateway", "realtime", "hybrid")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help="gateway base URL (default ws://127.0.0.1:8787)")
    p.add_argument("--arch", choices=ARCHES, default="gateway")
    p.add_argument("--publish", choices=("http-new", "http-pooled", "ws-persistent"), default=None)
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--messages", type=int, default=100, help="messages in all (default 100)")
    p.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="unrecorded messages per client first")
    p.add_argument("--same-agent", action="store_true", help="all clients talk to one agent")
    p.add_argument("--out", type=Path, default=Path("data/runs"), help="where the run goes")
    p.add_argument("--spawn", action="store_true", help="start a local worker for the probe")
    p.add_argument("--profile", default="instant", help="LLM profile of a spawned worker")
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    if args.messages < 1 or args.clients < 1:
        print("travelagent probe: --messages and --clients must be at least 1", file=sys.stderr)
        return 2
    if args.arch != "gateway":
        print(f"travelagent probe: --arch {args.arch} is not available yet", file=sys.stderr)
        return 2
    from travelagent.client.runinfo import new_run_id

    run_dir = args.out / new_run_id("probe-")
    try:
        if args.spawn:
            from travelagent.client.spawn import spawned_worker

            with spawned_worker(profile=args.profile, stream=args.stream) as url:
                result = asyncio.run(probe_gateway(url, run_dir, args))
        else:
            result = asyncio.run(probe_gateway(args.url or "ws://127.0.0.1:8787", run_dir, args))
    except OSError as err:
        print(f"travelagent probe: cannot reach the worker: {err}", file=sys.stderr)
        return 1
    print(summary_text(run_dir))
    print(f"\nrun written to {run_dir}")
    return 0 if result["ok"] > 0 else 1


async def probe_gateway(url: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from travelagent.client.aio_gateway import AsyncGatewayClient
    from travelagent.client.prompts import prompt_cycle
    from travelagent.client.records import Recorder, finalize_run
    from travelagent.client.runinfo import iso_now, write_run_json

    run_id = run_dir.name
    recorder = Recorder(run_dir)
    started = iso_now()
    config = {
        "url": url,
        "arch": "gateway",
        "stream": args.stream,
        "messages": args.messages,
        "clients": args.clients,
        "same_agent": args.same_agent,
        "spawned_profile": args.profile if args.spawn else None,
    }
    write_run_json(run_dir, {"kind": "probe", "status": "running", "config": config,
                             "started": started})  # fmt: skip
    counts = [args.messages // args.clients + (i < args.messages % args.clients)
              for i in range(args.clients)]  # fmt: skip
    statuses: dict[str, int] = {}
    bar = tqdm(total=args.messages, desc="probe", unit="msg", disable=args.quiet, file=sys.stderr)

    async def one_client(i: int, n: int) -> None:
        user = "probe-0" if args.same_agent else f"probe-{i}"
        prompts = prompt_cycle(seed=i)
        client = AsyncGatewayClient(
            url, user, run=run_id, cell="probe", stream=args.stream, timeout_s=args.timeout_s
        )
        async with client:
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
        finalize_run(run_dir)
        cell = {"cell": "probe", "arch": "gateway", "publish": "", "streaming": bool(args.stream),
                "scenario_name": None, "scenario": None, "status": "ok",
                "shape": {"kind": "closed", "users": args.clients}}  # fmt: skip
        write_run_json(run_dir, {"status": "complete", "ended": iso_now(), "cells": [cell],
                                 "statuses": statuses})  # fmt: skip
    return {"ok": statuses.get("ok", 0), "statuses": statuses}


def summary_text(run_dir: Path) -> str:
    """p50/p90/p99/max of end to end, first reply and every hop, in path order."""
    import numpy as np

    from travelagent.analysis.load import load_run

    run = load_run(run_dir)
    msgs = run.messages
    lines = [f"{'':34} {'n':>6} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}"]

    def row(label: str, values: Any) -> None:
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            return
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        lines.append(f"{label:34} {v.size:6d} {p50:9.3f} {p90:9.3f} {p99:9.3f} {v.max():9.3f}")

    row("end to end (recv - send)", msgs["service_ms"].dropna().to_numpy(dtype=float))
    row("first reply (first - send)", msgs["ttfc_ms"].dropna().to_numpy(dtype=float))
    hops = run.hops
    if not hops.empty:
        order = hops.groupby("hop")["idx"].median().sort_values().index
        for hop in order:
            sel = hops[hops["hop"] == hop]
            kind = sel["category"].iloc[0]
            row(f"  {hop} [{kind}]", sel["dur_ms"].to_numpy(dtype=float))
    status = msgs["status"].value_counts().to_dict()
    lines.append("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(status.items())))
    return "\n".join(lines)
