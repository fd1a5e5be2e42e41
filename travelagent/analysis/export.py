"""A run's traces in the formats tracing tools read: Perfetto (Chrome trace-event JSON) and
OpenTelemetry (OTLP/JSON).

Pure code: a ``Run`` in, a JSON-ready dict out; ``travelagent export`` writes it to a file.

Design rules:
- The spans are the hops of ``hops.compute_hops``: a message's chain from ``client.send`` to
  ``client.recv``, so the exported spans of a message sum to its service time exactly. Only ok
  messages have hops; errors and timeouts are not exported.
- A hop belongs to the process where it starts (a network hop to the process that sent it).
- Perfetto: slices on one thread must nest, and hops of concurrent messages overlap, so each
  process gets as many lanes (threads) as it has hops in flight at once. Lanes are packed first
  fit in start order, so a message's consecutive hops on one process share a lane when they can.
  Timestamps are microseconds from the first exported stamp (``otherData.t0_unix_ns``): absolute
  Unix times in microseconds would lose the nanoseconds in a double.
- OTLP: one trace per message (the 32-hex message id is the trace id), a root span for the
  whole message on the client, and one child span per hop. Ids are derived from the message id
  and the hop index, so exporting the same run twice gives the same file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

FORMATS = ("perfetto", "otlp")
DEFAULT_LIMIT = 2000
# Processes in path order, for the order of tracks and services; others follow by name.
PROCESS_ORDER = ("client", "realtime", "worker", "agents", "llm")
SCOPE_NAME = "travelagent.analysis.export"
_HEX32 = re.compile(r"[0-9a-f]{32}")
# OTLP SpanKind values (trace.proto)
SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3


class ExportError(ValueError):
    """The run has nothing to export for the given selection."""


def select_messages(
    run: Run, *, limit: int = DEFAULT_LIMIT, cells: Iterable[str] = ()
) -> pd.DataFrame:
    """The ok messages with hops to export, in send order: at most ``limit`` (0: all), spread
    over the cells (the first ``limit / cells`` messages of each cell, so every cell shows)."""
    wanted = list(cells)
    msgs = run.ok()
    if wanted:
        unknown = sorted(set(wanted) - set(run.cells["cell"]))
        if unknown:
            known = ", ".join(run.cells["cell"])
            raise ExportError(f"no cell {', '.join(unknown)} in run {run.run_id} (cells: {known})")
        msgs = msgs[msgs["cell"].isin(wanted)]
    msgs = msgs[msgs["msg_id"].isin(run.hops["msg_id"])]
    if msgs.empty:
        raise ExportError(f"run {run.run_id} has no complete messages to export")
    msgs = msgs.sort_values(["send_ns", "msg_id"], kind="stable")
    if limit and len(msgs) > limit:
        rank = msgs.groupby("cell", sort=False).cumcount()
        msgs = msgs.assign(_rank=rank).sort_values(["_rank", "send_ns"], kind="stable")
        msgs = msgs.head(limit).drop(columns="_rank").sort_values(["send_ns", "msg_id"])
    return msgs.reset_index(drop=True)


def _selected_hops(run: Run, msgs: pd.DataFrame) -> pd.DataFrame:
    hops = run.hops[run.hops["msg_id"].isin(msgs["msg_id"])]
    return hops.sort_values(["start_ns", "msg_id", "idx"], kind="stable").reset_index(drop=True)


def _process_order(names: Iterable[str]) -> list[str]:
    rank = {p: i for i, p in enumerate(PROCESS_ORDER)}
    return sorted(set(names), key=lambda p: (rank.get(p, len(rank)), p))


def _slice_name(hop: dict[Hashable, Any]) -> str:
    return f"{hop['from_name']}→{hop['to_name']}"


# --------------------------------------------------------------------------- Perfetto


def _us(ns: int) -> float:
    """Nanoseconds as microseconds, exact to the nanosecond for the relative times used here."""
    return ns / 1000


def _assign_lanes(hops: pd.DataFrame) -> list[int]:
    """A lane per hop such that slices on one lane of a process never overlap (first fit).

    Two slices may touch (one ends where the next starts) when both last at least 2 ns: the flow
    events sit at a slice's midpoint, which then lies strictly inside it."""
    ends: dict[str, list[tuple[int, int]]] = {}  # process -> per lane (end_ns, last dur_ns)
    lanes = []
    for proc, start, dur in zip(
        hops["from_process"], hops["start_ns"], hops["dur_ns"], strict=True
    ):
        dur = max(int(dur), 0)
        start = int(start)
        lane_ends = ends.setdefault(str(proc), [])
        free = (
            i
            for i, (end, last_dur) in enumerate(lane_ends)
            if end < start or (end == start and min(dur, last_dur) >= 2)
        )
        lane = next(free, len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append((0, 0))
        lane_ends[lane] = (start + dur, dur)
        lanes.append(lane)
    return lanes


def trace_events(
    run: Run, *, limit: int = DEFAULT_LIMIT, cells: Iterable[str] = ()
) -> dict[str, Any]:
    """Chrome trace-event JSON (object form) for ui.perfetto.dev and chrome://tracing: a
    process per travelagent process, an ``X`` slice per hop, a flow (``s``/``f``) wherever a
    message moves to another process, and a ``client.first`` instant for each streamed reply."""
    from travelagent import __version__

    msgs = select_messages(run, limit=limit, cells=cells)
    hops = _selected_hops(run, msgs)
    t0 = int(min(hops["start_ns"].min(), msgs["send_ns"].min()))
    procs = _process_order(hops["from_process"])
    streamed = msgs[msgs["streaming"].astype(bool) & msgs["first_ns"].notna()]
    if len(streamed):
        procs = _process_order([*procs, "client"])
    pid = {p: i + 1 for i, p in enumerate(procs)}
    lanes = _assign_lanes(hops)
    tids: dict[tuple[str, int], int] = {}
    meta: list[dict[str, Any]] = []
    for p in procs:
        meta.append(_meta("process_name", pid[p], 0, {"name": p}))
        meta.append(_meta("process_sort_index", pid[p], 0, {"sort_index": pid[p]}))
    events: list[dict[str, Any]] = []
    # per message: (pid, tid, mid ts) of each hop's slice, by hop index
    placed: dict[str, dict[int, tuple[int, int, int, str]]] = {}
    for hop, lane in zip(hops.to_dict("records"), lanes, strict=True):
        proc = str(hop["from_process"])
        key = (proc, lane)
        if key not in tids:
            tids[key] = len(tids) + 1
            meta.append(_meta("thread_name", pid[proc], tids[key], {"name": f"{proc} #{lane + 1}"}))
            meta.append(_meta("thread_sort_index", pid[proc], tids[key], {"sort_index": lane}))
        start, dur = int(hop["start_ns"]) - t0, max(int(hop["dur_ns"]), 0)
        events.append(
            {
                "ph": "X",
                "name": _slice_name(hop),
                "cat": str(hop["category"]),
                "pid": pid[proc],
                "tid": tids[key],
                "ts": _us(start),
                "dur": _us(dur),
                "args": {
                    "msg_id": str(hop["msg_id"]),
                    "cell": str(hop["cell"]),
                    "arch": str(hop["arch"]),
                    "publish": str(hop["publish"]),
                    "hop": str(hop["hop"]),
                    "dur_ms": float(hop["dur_ms"]),
                    "network": bool(hop["network"]),
                },
            }
        )
        placed.setdefault(str(hop["msg_id"]), {})[int(hop["idx"])] = (
            pid[proc], tids[key], start + dur // 2, proc
        )  # fmt: skip
    flow_id = 0
    for msg_id in msgs["msg_id"]:
        chain = placed.get(str(msg_id), {})
        for idx in sorted(chain):
            if idx + 1 not in chain or chain[idx][3] == chain[idx + 1][3]:
                continue
            flow_id += 1
            (p1, t1, m1, _), (p2, t2, m2, _) = chain[idx], chain[idx + 1]
            flow = {"name": "message", "cat": "flow", "id": flow_id}
            events.append({**flow, "ph": "s", "pid": p1, "tid": t1, "ts": _us(m1)})
            events.append({**flow, "ph": "f", "bp": "e", "pid": p2, "tid": t2, "ts": _us(m2)})
    for m in streamed.to_dict("records"):
        events.append(
            {
                "ph": "i",
                "s": "p",
                "name": "client.first",
                "cat": "marker",
                "pid": pid["client"],
                "tid": 0,
                "ts": _us(int(m["first_ns"]) - t0),
                "args": {"msg_id": str(m["msg_id"]), "cell": str(m["cell"])},
            }
        )
    events.sort(key=lambda e: e["ts"])
    return {
        "traceEvents": meta + events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": run.run_id,
            "t0_unix_ns": t0,
            "messages": len(msgs),
            "cells": sorted(msgs["cell"].unique().tolist()),
            "exporter": f"travelagent {__version__}",
        },
    }


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}


# --------------------------------------------------------------------------- OTLP


def trace_id(msg_id: str) -> str:
    """32 lowercase hex: the message id itself when it is one (uuid4 hex), else its hash."""
    if _HEX32.fullmatch(msg_id) and msg_id.strip("0"):
        return msg_id
    return hashlib.sha256(msg_id.encode()).hexdigest()[:32]


def span_id(msg_id: str, part: str) -> str:
    """16 lowercase hex, derived from the message id and the span's part ("message", "hop/3")."""
    return hashlib.sha256(f"{msg_id}/{part}".encode()).hexdigest()[:16]


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 as a string in OTLP/JSON
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _message_attrs(m: dict[Hashable, Any]) -> list[dict[str, Any]]:
    return [
        _attr("travelagent.msg_id", str(m["msg_id"])),
        _attr("travelagent.cell", str(m["cell"])),
        _attr("travelagent.arch", str(m["arch"])),
        _attr("travelagent.publish", str(m["publish"])),
        _attr("travelagent.streaming", bool(m["streaming"])),
    ]


def otlp_request(
    run: Run, *, limit: int = DEFAULT_LIMIT, cells: Iterable[str] = ()
) -> dict[str, Any]:
    """An OTLP/JSON ``ExportTraceServiceRequest``: a resource (``service.name``) per process,
    one trace per message with a root span (the service time) and a child span per hop."""
    from travelagent import __version__

    msgs = select_messages(run, limit=limit, cells=cells)
    hops = _selected_hops(run, msgs).sort_values(["msg_id", "idx"], kind="stable")
    by_msg = {str(m["msg_id"]): m for m in msgs.to_dict("records")}
    spans: dict[str, list[dict[str, Any]]] = {}
    for m in msgs.to_dict("records"):
        mid = str(m["msg_id"])
        root: dict[str, Any] = {
            "traceId": trace_id(mid),
            "spanId": span_id(mid, "message"),
            "name": f"{m['arch']} message",
            "kind": SPAN_KIND_CLIENT,
            "startTimeUnixNano": str(int(m["send_ns"])),
            "endTimeUnixNano": str(int(m["recv_ns"])),
            "attributes": _message_attrs(m),
        }
        if m["streaming"] and pd.notna(m["first_ns"]):
            root["events"] = [{"timeUnixNano": str(int(m["first_ns"])), "name": "client.first"}]
        spans.setdefault("client", []).append(root)
    for hop in hops.to_dict("records"):
        mid = str(hop["msg_id"])
        start = int(hop["start_ns"])
        spans.setdefault(str(hop["from_process"]), []).append(
            {
                "traceId": trace_id(mid),
                "spanId": span_id(mid, f"hop/{int(hop['idx'])}"),
                "parentSpanId": span_id(mid, "message"),
                "name": _slice_name(hop),
                "kind": SPAN_KIND_INTERNAL,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + max(int(hop["dur_ns"]), 0)),
                "attributes": [
                    *_message_attrs(by_msg[mid]),
                    _attr("travelagent.hop", str(hop["hop"])),
                    _attr("travelagent.hop.index", int(hop["idx"])),
                    _attr("travelagent.hop.from", str(hop["from_name"])),
                    _attr("travelagent.hop.to", str(hop["to_name"])),
                    _attr("travelagent.hop.category", str(hop["category"])),
                    _attr("travelagent.hop.network", bool(hop["network"])),
                    _attr("travelagent.hop.http", bool(hop["http"])),
                ],
            }
        )
    resource_spans = []
    for proc in _process_order(spans):
        resource = {
            "attributes": [
                _attr("service.name", proc),
                _attr("service.namespace", "travelagent"),
                _attr("travelagent.run_id", run.run_id),
            ]
        }
        scope = {"name": SCOPE_NAME, "version": __version__}
        resource_spans.append(
            {"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans[proc]}]}
        )
    return {"resourceSpans": resource_spans}


def export_run(
    run: Run, fmt: str, *, limit: int = DEFAULT_LIMIT, cells: Iterable[str] = ()
) -> dict[str, Any]:
    """The run in format ``fmt`` (one of ``FORMATS``) as a JSON-ready dict."""
    if fmt == "perfetto":
        return trace_events(run, limit=limit, cells=cells)
    if fmt == "otlp":
        return otlp_request(run, limit=limit, cells=cells)
    raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
