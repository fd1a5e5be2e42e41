"""``travelagent export``: the reference run as Chrome trace-event JSON and as OTLP/JSON, each
checked against its format."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from travelagent.analysis.export import (
    ExportError,
    otlp_request,
    select_messages,
    span_id,
    trace_events,
    trace_id,
)
from travelagent.analysis.load import Run, load_run, reference_run
from travelagent.cli import main

REFERENCE = reference_run()


@pytest.fixture(scope="module")
def run() -> Run:
    return load_run(REFERENCE)


def cell(run: Run, arch: str, *, publish: str = "", streaming: bool = False) -> str:
    """The reference run's first cell of a path (the reference run is remade now and then)."""
    c = run.cells
    pick = c[(c["arch"] == arch) & (c["publish"] == publish) & (c["streaming"] == streaming)]
    return str(pick["cell"].iloc[0])


# --------------------------------------------------------------------------- selection


def test_the_limit_spreads_the_messages_over_every_cell(run: Run) -> None:
    msgs = select_messages(run, limit=180)
    assert len(msgs) == 180
    assert msgs["cell"].value_counts().to_dict() == {c: 10 for c in run.cells["cell"]}
    # the first messages of each cell, in send order
    first = run.ok().sort_values("send_ns").groupby("cell").head(10)
    assert set(msgs["msg_id"]) == set(first["msg_id"])
    assert msgs["send_ns"].is_monotonic_increasing


def test_a_cell_filter_keeps_only_that_cell_and_an_unknown_cell_is_an_error(run: Run) -> None:
    ws = cell(run, "realtime", publish="ws-persistent")
    msgs = select_messages(run, limit=0, cells=[ws])
    assert set(msgs["cell"]) == {ws}
    assert len(msgs) == int((run.ok()["cell"] == ws).sum())
    with pytest.raises(ExportError, match="no cell nope"):
        select_messages(run, cells=["nope"])


# --------------------------------------------------------------------------- trace events

# Fields every event of a phase must carry (the Trace Event Format document).
REQUIRED = {
    "X": {"name", "cat", "ph", "ts", "dur", "pid", "tid"},
    "s": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "f": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "i": {"name", "ph", "ts", "pid", "s"},
    "M": {"name", "ph", "pid", "args"},
}


def _slices_by_thread(events: list[dict[str, Any]]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Per (pid, tid): the X slices as (start, end) in integer nanoseconds, sorted."""
    out: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            start = round(e["ts"] * 1000)
            out[(e["pid"], e["tid"])].append((start, start + round(e["dur"] * 1000)))
    return {k: sorted(v) for k, v in out.items()}


def test_the_trace_events_carry_the_documented_fields(run: Run) -> None:
    doc = trace_events(run, limit=300)
    json.loads(json.dumps(doc))  # plain JSON
    events = doc["traceEvents"]
    for e in events:
        assert REQUIRED[e["ph"]] <= set(e), e
        if "ts" in e:
            assert isinstance(e["ts"], int | float) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
        if e["ph"] == "i":
            assert e["s"] in ("g", "p", "t")
    assert doc["otherData"]["run_id"] == run.run_id


def test_one_named_process_per_travelagent_process_and_one_slice_per_hop(run: Run) -> None:
    doc = trace_events(run, limit=300)
    events = doc["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert sorted(names.values()) == ["client", "realtime", "worker"]
    threads = {(e["pid"], e["tid"]) for e in events if e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    assert {(e["pid"], e["tid"]) for e in slices} <= threads
    msgs = select_messages(run, limit=300)
    hops = run.hops[run.hops["msg_id"].isin(msgs["msg_id"])]
    assert len(slices) == len(hops)
    # each hop on the process where it starts, named after its two stamps
    got = Counter((names[e["pid"]], e["name"]) for e in slices)
    want = Counter(
        zip(hops["from_process"], hops["from_name"] + "→" + hops["to_name"], strict=True)
    )
    assert got == want
    # the hops of a message sum to its service time
    per_msg: Counter[str] = Counter()
    for e in slices:
        per_msg[e["args"]["msg_id"]] += round(e["dur"] * 1000)
    service = msgs.set_index("msg_id")["recv_ns"] - msgs.set_index("msg_id")["send_ns"]
    assert all(per_msg[m] == int(service[m]) for m in service.index)


def test_slices_on_one_thread_never_overlap(run: Run) -> None:
    for spans in _slices_by_thread(trace_events(run, limit=0)["traceEvents"]).values():
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start


def test_flows_link_a_message_across_processes_and_bind_inside_its_slices(run: Run) -> None:
    doc = trace_events(run, limit=300)
    events = doc["traceEvents"]
    threads = _slices_by_thread(events)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and starts.keys() == finishes.keys()
    assert len(starts) == sum(1 for e in events if e["ph"] == "s")  # ids are unique
    for fid, s in starts.items():
        f = finishes[fid]
        assert (s["cat"], s["name"]) == (f["cat"], f["name"]) and f["bp"] == "e"
        assert s["pid"] != f["pid"] and s["ts"] < f["ts"]
        for e in (s, f):  # strictly inside exactly one slice of its thread
            t = round(e["ts"] * 1000)
            inside = [sp for sp in threads[(e["pid"], e["tid"])] if sp[0] <= t <= sp[1]]
            assert len(inside) == 1 and inside[0][0] < t < inside[0][1]


def test_a_realtime_message_has_a_flow_wherever_it_changes_process(run: Run) -> None:
    doc = trace_events(run, limit=1, cells=[cell(run, "realtime", publish="http-new")])
    events = doc["traceEvents"]
    pids = {e["args"]["name"]: e["pid"] for e in events if e["name"] == "process_name"}
    assert sum(e["ph"] == "X" for e in events) == 11
    flows = sorted((e["ts"], e["pid"]) for e in events if e["ph"] == "s")
    # client→realtime, realtime→worker (the webhook), worker→realtime (the publish); the last
    # hop, realtime→client, ends the chain
    assert [p for _, p in flows] == [pids["client"], pids["realtime"], pids["worker"]]


def test_streamed_replies_show_their_first_chunk(run: Run) -> None:
    on = cell(run, "realtime", publish="http-new", streaming=True)
    off = cell(run, "realtime", publish="http-new")
    doc = trace_events(run, limit=0, cells=[on, off])
    firsts = [e for e in doc["traceEvents"] if e["name"] == "client.first"]
    streamed = select_messages(run, limit=0, cells=[on])
    assert len(firsts) == len(streamed)
    assert {e["args"]["cell"] for e in firsts} == {on}


# --------------------------------------------------------------------------- OTLP


def _spans(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for rs in doc["resourceSpans"]:
        service = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}["service.name"]
        for ss in rs["scopeSpans"]:
            out += [(service["stringValue"], s) for s in ss["spans"]]
    return out


def test_the_otlp_file_parses_as_an_export_trace_service_request(run: Run) -> None:
    doc = otlp_request(run, limit=300)
    req = json_format.Parse(json.dumps(doc), ExportTraceServiceRequest())
    services = [
        {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
        for rs in req.resource_spans
    ]
    assert services == ["client", "realtime", "worker"]
    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    hops = run.hops[run.hops["msg_id"].isin(select_messages(run, limit=300)["msg_id"])]
    assert n == 300 + len(hops)  # a root span per message, a span per hop
    # OTLP/JSON writes ids as hex, where protobuf's own JSON mapping expects base64: re-encoded,
    # they parse to the 16- and 8-byte ids of the protocol.
    b64 = copy.deepcopy(doc)
    for _, s in _spans(b64):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in s:
                s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    req = json_format.Parse(json.dumps(b64), ExportTraceServiceRequest())
    for rs in req.resource_spans:
        for s in rs.scope_spans[0].spans:
            assert len(s.trace_id) == 16 and len(s.span_id) == 8
            assert s.end_time_unix_nano >= s.start_time_unix_nano > 0


def test_one_trace_per_message_with_every_hop_a_child_of_its_root(run: Run) -> None:
    doc = otlp_request(run, limit=100)
    spans = _spans(doc)
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, s in spans:
        assert len(s["traceId"]) == 32 and len(s["spanId"]) == 16
        int(s["traceId"], 16), int(s["spanId"], 16)
        assert isinstance(s["startTimeUnixNano"], str) and isinstance(s["endTimeUnixNano"], str)
        by_trace[s["traceId"]].append(s)
    assert len(by_trace) == 100
    for trace in by_trace.values():
        roots = [s for s in trace if "parentSpanId" not in s]
        assert len(roots) == 1
        ids = {s["spanId"] for s in trace}
        assert len(ids) == len(trace)
        assert all(s["parentSpanId"] == roots[0]["spanId"] for s in trace if s is not roots[0])
        attrs = {a["key"]: a["value"] for a in roots[0]["attributes"]}
        assert trace_id(attrs["travelagent.msg_id"]["stringValue"]) == roots[0]["traceId"]
        hop_total = sum(int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"]) for s in trace
                        if s is not roots[0])  # fmt: skip
        assert hop_total == int(roots[0]["endTimeUnixNano"]) - int(roots[0]["startTimeUnixNano"])
    hop = next(s for svc, s in spans if svc == "worker")
    keys = {a["key"] for a in hop["attributes"]}
    assert {"travelagent.cell", "travelagent.arch", "travelagent.publish", "travelagent.hop",
            "travelagent.hop.from", "travelagent.hop.to"} <= keys  # fmt: skip


def test_ids_are_derived_from_the_message_so_exports_are_deterministic(run: Run) -> None:
    assert otlp_request(run, limit=50) == otlp_request(run, limit=50)
    assert trace_events(run, limit=50) == trace_events(run, limit=50)
    assert trace_id("79afc1d9552f41e6aa5c80245ba87f95") == "79afc1d9552f41e6aa5c80245ba87f95"
    assert len(trace_id("not-hex")) == 32 and trace_id("not-hex") == trace_id("not-hex")
    assert span_id("m", "hop/1") != span_id("m", "hop/2")


# --------------------------------------------------------------------------- command line


def test_travelagent_export_writes_both_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    perfetto, otlp = tmp_path / "trace.json", tmp_path / "otlp" / "trace.json"
    assert main(["export", str(REFERENCE), "--format", "perfetto", "--out", str(perfetto),
                 "--limit", "40"]) == 0  # fmt: skip
    assert main(["export", str(REFERENCE), "--format", "otlp", "--out", str(otlp),
                 "--cell", cell(load_run(REFERENCE), "hybrid"), "--limit", "0"]) == 0  # fmt: skip
    assert json.loads(perfetto.read_text())["otherData"]["messages"] == 40
    req = json_format.Parse(otlp.read_text(), ExportTraceServiceRequest())
    assert req.resource_spans
    out = capsys.readouterr().out
    assert "ui.perfetto.dev" in out and "/v1/traces" in out


def test_travelagent_export_reports_a_bad_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.json"
    assert main(["export", str(REFERENCE), "--format", "otlp", "--out", str(out),
                 "--cell", "nope"]) == 2  # fmt: skip
    assert "no cell nope" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(tmp_path / "missing"), "--format", "otlp", "--out", str(out)]) == 2


def test_the_light_command_module_agrees_with_the_exporter() -> None:
    from travelagent.analysis import export, export_cli

    assert export_cli.FORMATS == export.FORMATS
    assert export_cli.DEFAULT_LIMIT == export.DEFAULT_LIMIT
