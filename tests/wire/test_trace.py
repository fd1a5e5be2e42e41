from __future__ import annotations

from typing import Any

import pytest

from travelagent.wire.trace import (
    GATEWAY_PATH,
    MAX_STAMPS,
    REALTIME_PATH,
    Trace,
    TraceError,
    now_ns,
)


def test_paths_start_at_the_client_and_end_at_the_client() -> None:
    for path in (GATEWAY_PATH, REALTIME_PATH):
        assert path[0] == "client.send" and path[-1] == "client.recv"
        assert len(set(path)) == len(path)


def test_stamp_appends_name_time_and_process_in_order() -> None:
    tr = Trace.start("m1")
    t1 = tr.stamp("client.send", "client")
    t2 = tr.stamp("worker.recv", "worker")
    assert t1 <= t2 <= now_ns()
    assert [s[0] for s in tr.stamps] == ["client.send", "worker.recv"]
    assert tr.get("worker.recv") == t2 and tr.get("agent.start") is None


def test_unknown_stamp_name_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        Trace.start().stamp("worker.recieve", "worker")  # type: ignore[arg-type]


def test_wire_round_trip_keeps_everything() -> None:
    tr = Trace.start("abc")
    tr.stamp("client.send", "client", t_ns=5)
    tr.stamp("worker.recv", "worker", t_ns=7)
    back = Trace.from_wire(tr.to_wire())
    assert back == tr


def test_two_element_stamps_from_older_peers_are_accepted() -> None:
    tr = Trace.from_wire({"id": "x", "stamps": [["client.send", 1]]})
    assert tr.stamps == [("client.send", 1, "")]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"id": ""},
        {"id": 3},
        {"id": "x", "stamps": "no"},
        {"id": "x", "stamps": [["a"]]},
        {"id": "x", "stamps": [["a", -1]]},
        {"id": "x", "stamps": [["a", True]]},
        {"id": "x", "stamps": [["a", 1.5]]},
        {"id": "x", "stamps": [[1, 1]]},
        {"id": "x", "stamps": [["a", 1]] * (MAX_STAMPS + 1)},
    ],
)
def test_malformed_traces_are_rejected_with_a_reason(bad: Any) -> None:
    with pytest.raises(TraceError):
        Trace.from_wire(bad)


def test_a_trace_cannot_grow_without_bound() -> None:
    tr = Trace.start()
    for _ in range(MAX_STAMPS):
        tr.stamp("agent.start", "worker", t_ns=1)
    with pytest.raises(TraceError):
        tr.stamp("agent.done", "worker")


def test_try_stamp_takes_the_stamp_while_there_is_room_and_skips_it_when_full() -> None:
    tr = Trace.start()
    assert tr.try_stamp("worker.recv", "worker", t_ns=1) is True
    for _ in range(MAX_STAMPS - 1):
        tr.stamp("agent.start", "worker", t_ns=1)
    assert tr.try_stamp("worker.send", "worker") is False
    assert len(tr.stamps) == MAX_STAMPS and tr.stamps[0] == ("worker.recv", 1, "worker")


def test_try_stamp_still_refuses_an_unknown_name() -> None:
    with pytest.raises(KeyError):
        Trace.start().try_stamp("no.such.stamp", "worker")  # type: ignore[arg-type]


def test_room_counts_the_stamps_a_trace_still_takes() -> None:
    tr = Trace.start()
    assert tr.room == MAX_STAMPS
    tr.stamp("client.send", "client", t_ns=1)
    assert tr.room == MAX_STAMPS - 1
