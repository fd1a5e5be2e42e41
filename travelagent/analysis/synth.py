"""Synthetic runs with known answers, for tests and for trying the notebooks without a topology.

A synthetic message walks its path stamp by stamp: every network leg takes its link's one-way
delay (plus set-up round trips where a new connection is opened, plus optional exponential
noise), the LLM takes a fixed time, everything else a small processing time. The run is written
through the same ``Recorder``/``finalize_run``/``write_run_json`` as a real one, so the analysis
reads it exactly like a real run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from travelagent.client.records import MessageRecord, Recorder, finalize_run
from travelagent.client.runinfo import write_run_json
from travelagent.wire.trace import Trace

LINKS = ("client_worker", "client_realtime", "realtime_worker", "worker_realtime", "worker_agents")


def link(delay_ms: float, *, setup_rtts: int = 1, bandwidth_kbps: float = 0) -> dict[str, Any]:
    return {
        "delay_ms": delay_ms,
        "jitter_ms": 0,
        "jitter": "none",
        "setup_rtts": setup_rtts,
        "bandwidth_kbps": bandwidth_kbps,
    }


def default_links(delay_ms: float = 10.0) -> dict[str, dict[str, Any]]:
    return {name: link(delay_ms) for name in LINKS}


@dataclass
class SynthCell:
    """One cell of a synthetic run; every time is in milliseconds."""

    cell: str
    arch: str  # gateway | realtime | hybrid
    publish: str = ""  # http-new | http-pooled | ws-persistent (realtime only)
    streaming: bool = False
    webhook_mode: str = "after-publish"
    n: int = 100
    users: int = 1
    rate_per_s: float = 10.0
    links: dict[str, dict[str, Any]] = field(default_factory=default_links)
    llm_first_ms: float = 20.0  # agent.start -> llm.first
    llm_ms: float = 80.0  # agent.start -> llm.done
    proc_ms: float = 0.5  # every in-process hop that is not the LLM
    noise_ms: float = 0.0  # mean of exponential noise added to every network leg
    queue_ms: float = 0.0  # mean of exponential wait between intended and actual send
    agents_separate: bool = False
    fail_every: int = 0  # every n-th message times out (0: none)
    reply_bytes: int = 400
    # A streamed realtime reply of ``tokens`` tokens (0: the old single-step stream): token i is
    # due at llm_first_ms + (llm_ms - llm_first_ms) * i / (tokens - 1) after agent.start, and
    # the worker's drain publishes them as worker.turn does (see ``_drain_times``).
    tokens: int = 0
    profile: str = "synthetic"
    flags: tuple[str, ...] = ()  # what the cell's self-check would have flagged


def _scenario(c: SynthCell, seed: int) -> dict[str, Any]:
    return {
        "name": "synthetic",
        "seed": seed,
        "llm": {"backend": "simulated", "profile": c.profile},
        "worker": {
            "publish": c.publish or "http-pooled",
            "stream": c.streaming,
            "webhook_mode": c.webhook_mode,
            "agents": "separate" if c.agents_separate else "in-process",
        },
        "links": c.links,
    }


def _stamp_message(c: SynthCell, rng: np.random.Generator, send_ns: int) -> tuple[Trace, int, int]:
    """Stamps for one message; returns the trace, first_ns and recv_ns."""
    ms = 1_000_000

    def leg(name: str, extra_ms: float = 0.0) -> int:
        d = c.links[name]["delay_ms"] + extra_ms
        if c.noise_ms > 0:
            d += rng.exponential(c.noise_ms)
        return round(float(d) * ms)

    proc = round(c.proc_ms * ms)
    agent_proc = "agents" if c.agents_separate else "worker"
    tr = Trace.start()
    t = send_ns
    tr.stamp("client.send", "client", t)
    if c.arch == "realtime":
        t += leg("client_realtime")
        tr.stamp("realtime.recv", "realtime", t)
        t += proc
        tr.stamp("realtime.webhook", "realtime", t)
        t += leg("realtime_worker")
    else:
        t += leg("client_worker")
    tr.stamp("worker.recv", "worker", t)
    t += leg("worker_agents") if c.agents_separate else proc
    tr.stamp("agent.start", agent_proc, t)
    llm_start = t
    tr.stamp("llm.first", agent_proc, llm_start + round(c.llm_first_ms * ms))
    t = llm_start + round(c.llm_ms * ms)
    tr.stamp("llm.done", agent_proc, t)
    t += proc
    tr.stamp("agent.done", agent_proc, t)
    t += leg("worker_agents") if c.agents_separate else proc
    drained = c.streaming and c.arch == "realtime" and c.tokens > 0
    if drained:
        wait_end, first_pub = _drain_times(c, llm_start)
        t = max(t, wait_end)
    if c.arch == "realtime":
        tr.stamp("worker.publish", "worker", t)
        wr = c.links["worker_realtime"]
        setup = wr["setup_rtts"] * 2 * wr["delay_ms"] if c.publish == "http-new" else 0.0
        publish = leg("worker_realtime", setup)
        t += publish
        tr.stamp("realtime.publish", "realtime", t)
        t += proc
        tr.stamp("realtime.deliver", "realtime", t)
        last = leg("client_realtime")
        way_out = publish + proc + last
    else:
        tr.stamp("worker.send", "worker", t)
        last = way_out = leg("client_worker")
    recv = t + last
    # A streamed reply's first chunk leaves as soon as the LLM's first token does, and takes
    # the same way out as the whole reply (publish and deliver on the realtime path).
    first = llm_start + round(c.llm_first_ms * ms) + proc + way_out if c.streaming else recv
    if drained:  # the first chunk goes out with the first chunk publication
        first = first_pub + publish + proc + last
    tr.stamp("client.first", "client", first)
    tr.stamp("client.recv", "client", recv)
    return tr, first, recv


def _drain_times(c: SynthCell, llm_start: int) -> tuple[int, int]:
    """(when the drain is empty, when the first chunk publication starts), in ns: the start
    frame is published at agent.start; each publication takes the publish link's round trip
    (with its set-up for ``http-new``) and carries every token due before it starts."""
    ms = 1_000_000
    wr = c.links["worker_realtime"]
    setup = wr["setup_rtts"] * 2 * wr["delay_ms"] if c.publish == "http-new" else 0.0
    rtt = round((2 * wr["delay_ms"] + setup) * ms)
    span = (c.llm_ms - c.llm_first_ms) * ms
    due = [
        llm_start + round(c.llm_first_ms * ms + (span * i / (c.tokens - 1) if c.tokens > 1 else 0))
        for i in range(c.tokens)
    ]
    busy_until = llm_start + rtt  # the start frame
    first_pub = -1
    queue = list(due)
    while queue:
        start = max(busy_until, queue[0])
        if first_pub < 0:
            first_pub = start
        queue = [d for d in queue if d > start]
        busy_until = start + rtt
    return busy_until, first_pub


def write_synthetic_run(
    root: str | Path, cells: list[SynthCell], *, run_id: str = "synthetic", seed: int = 0
) -> Path:
    """Write a finalized synthetic run ``root/run_id`` and return its directory."""
    run_dir = Path(root) / run_id
    rng = np.random.default_rng(seed)
    rec = Recorder(run_dir, tag="synth")
    t0 = 1_700_000_000_000_000_000
    cell_meta = []
    for c in cells:
        start = t0
        for i in range(c.n):
            intended = t0 + round(i / c.rate_per_s * 1e9)
            wait = round(float(rng.exponential(c.queue_ms)) * 1e6) if c.queue_ms > 0 else 0
            send = intended + wait
            tr, first, recv = _stamp_message(c, rng, send)
            failed = c.fail_every > 0 and (i + 1) % c.fail_every == 0
            rec.add(
                MessageRecord(
                    run=run_id,
                    cell=c.cell,
                    arch=c.arch,
                    publish=c.publish if c.arch == "realtime" else "",
                    streaming=c.streaming,
                    user=f"u{i % c.users}",
                    agent=f"u{i % c.users}",
                    msg_id=tr.id,
                    intended_ns=intended,
                    send_ns=send,
                    first_ns=None if failed else first,
                    recv_ns=None if failed else recv,
                    status="timeout" if failed else "ok",
                    error="timed out" if failed else "",
                    bytes=0 if failed else c.reply_bytes,
                    chunks=(c.tokens or 5) if c.streaming and not failed else 0,
                    trace=None if failed else tr,
                )
            )
        t0 = intended + 2_000_000_000
        cell_meta.append(
            {
                "cell": c.cell,
                "scenario_name": "synthetic",
                "scenario": _scenario(c, seed),
                "arch": c.arch,
                "publish": c.publish,
                "streaming": c.streaming,
                "shape": {"kind": "constant", "users": c.users, "rate_per_s": c.rate_per_s},
                "duration_s": (t0 - start) / 1e9,
                "status": "ok",
                "error": None,
                "started": None,
                "ended": None,
                "selfcheck": {"flagged": bool(c.flags), "flags": list(c.flags)},
            }
        )
    rec.close()
    finalize_run(run_dir)
    write_run_json(
        run_dir,
        {
            "run_id": run_id,
            "kind": "experiment",
            "seed": seed,
            "started": "2023-11-14T22:13:20.000+00:00",
            "ended": "2023-11-14T22:20:00.000+00:00",
            "status": "complete",
            "experiment": {"name": "synthetic"},
            "cells": cell_meta,
        },
    )
    return run_dir


def standard_cells(n: int = 120, *, noise_ms: float = 2.0) -> list[SynthCell]:
    """A small matrix touching every claim: both paths, publish modes, streaming, hybrid, load."""
    cells = [
        SynthCell("gateway", "gateway", n=n, noise_ms=noise_ms),
        SynthCell("hybrid", "hybrid", n=n, noise_ms=noise_ms),
        SynthCell("rt-http-new", "realtime", "http-new", n=n, noise_ms=noise_ms),
        SynthCell("rt-http-pooled", "realtime", "http-pooled", n=n, noise_ms=noise_ms),
        SynthCell("rt-ws", "realtime", "ws-persistent", n=n, noise_ms=noise_ms),
        SynthCell(
            "rt-http-new-stream", "realtime", "http-new", streaming=True, n=n, noise_ms=noise_ms
        ),
        SynthCell(
            "rt-http-new-ack",
            "realtime",
            "http-new",
            webhook_mode="ack-first",
            n=n,
            noise_ms=noise_ms,
        ),
    ]
    for users, q in ((10, 5.0), (50, 60.0)):
        cells.append(
            SynthCell(
                f"gateway-u{users}",
                "gateway",
                n=n,
                users=users,
                rate_per_s=users * 2.0,
                noise_ms=noise_ms,
                queue_ms=q,
            )
        )
    return cells


SWEEP_PATHS = (
    ("gateway", "gateway", "", False),
    ("rt-new", "realtime", "http-new", False),
    ("rt-pooled", "realtime", "http-pooled", False),
    ("rt-ws", "realtime", "ws-persistent", False),
    ("rt-new-stream", "realtime", "http-new", True),
    ("hybrid", "hybrid", "", False),
)


def write_synthetic_sweep(
    root: str | Path, *, n: int = 30, run_id: str = "synthetic-sweep"
) -> Path:
    """A small conditions sweep with known delays: a 2 x 2 x 2 grid (client RTT 10/100 ms,
    service RTT 4/60 ms, LLM instant/llama-8b-local-like), three points measured (two fit, one
    held out), every path of the note at each; run.json carries the grid and the points as
    ``travelagent run`` writes them for an experiment with ``[grid]`` and ``[[points]]``."""
    import json

    grid: dict[str, Any] = {
        "client": [{"name": "near", "rtt_ms": 10.0, "jitter_ms": 0.0, "jitter": "normal"},
                   {"name": "far", "rtt_ms": 100.0, "jitter_ms": 0.0, "jitter": "normal"}],
        "service": [{"name": "region", "rtt_ms": 4.0, "jitter_ms": 0.0, "jitter": "normal"},
                    {"name": "remote", "rtt_ms": 60.0, "jitter_ms": 0.0, "jitter": "normal"}],
        "llm": ["instant", "llama-8b-local-like"],
    }  # fmt: skip
    # (client, service, llm, held out): the LLM's times as the profiles would give them
    points = [("near", "region", "instant", False), ("far", "remote", "llama-8b-local-like", False),
              ("far", "region", "instant", True)]  # fmt: skip
    rtt = {str(x["name"]): float(x["rtt_ms"]) for x in [*grid["client"], *grid["service"]]}
    llm = {"instant": (0.5, 0.5, 40), "llama-8b-local-like": (150.0, 150.0 + 39 * 17.5, 40)}
    cells: list[SynthCell] = []
    scenarios = []
    for c, s, m, held in points:
        point = f"{c}.{s}.{m}"
        lk = {
            "client_worker": link(rtt[c] / 2, setup_rtts=2),
            "client_realtime": link(rtt[c] / 2, setup_rtts=2),
            "realtime_worker": link(rtt[s] / 2, setup_rtts=2),
            "worker_realtime": link(rtt[s] / 2, setup_rtts=2),
            "worker_agents": link(1),
        }
        first, done, tokens = llm[m]
        for name, arch, publish, stream in SWEEP_PATHS:
            entry = f"{point}.{name}"
            scenarios.append({"name": entry, "preset": "note", "arch": arch, "overrides": {},
                              "point": point, "held_out": held})  # fmt: skip
            cells.append(
                SynthCell(
                    f"{entry}-u4-5s",
                    arch,
                    publish,
                    streaming=stream,
                    n=n,
                    links=lk,
                    llm_first_ms=first,
                    llm_ms=done,
                    profile=m,
                    tokens=tokens if stream else 0,
                    noise_ms=0.5,
                )
            )
    run_dir = write_synthetic_run(root, cells, run_id=run_id)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["experiment"] = {"name": "synthetic-sweep", "scenarios": scenarios, "grid": grid}
    meta_path.write_text(json.dumps(meta, indent=2))
    return run_dir
