"""The testbed's self-check: flags raised from synthetic samples, none from quiet ones."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from travelagent.agent.llm.lateness import LatenessRecorder, read_lateness
from travelagent.monitor import CpuSampler, LoopLagMonitor
from travelagent.runner.selfcheck import (
    assess,
    between_processes_only,
    cpu_summary,
    send_lateness_ms,
)

QUIET_LAG = {"loop_lag": {"n": 100, "p50_ms": 0.5, "p99_ms": 1.5, "max_ms": 2.0}}


def _links(p99_ms: float) -> dict:
    late = {"n": 500, "p50_ms": 0.1, "p99_ms": p99_ms, "max_ms": p99_ms}
    return {"client_worker": {"stats": {"up": {"late": late}, "down": {"late": late}}}}


def samples(worker_pct: float, n: int = 40) -> list[tuple[int, str, float]]:
    out = []
    for i in range(n):
        out += [(i * 250_000_000, "worker", worker_pct), (i * 250_000_000, "locust", 30.0)]
    return out


def test_a_quiet_cell_raises_no_flag() -> None:
    check = assess(samples=samples(35.0), window_ns=None, health={"worker": QUIET_LAG},
                   links=_links(0.4))  # fmt: skip
    assert check["flags"] == [] and not check["flagged"]


def test_a_saturated_process_is_flagged() -> None:
    check = assess(samples=samples(97.0), window_ns=None, health={"worker": QUIET_LAG},
                   links=_links(0.4))  # fmt: skip
    assert check["flagged"]
    assert any(f.startswith("worker near a full core") for f in check["flags"])


def test_samples_outside_the_message_window_do_not_count() -> None:
    # a start-up burst before the first message is not the measurement
    s = [(t, "locust", 100.0) for t in range(0, 10)] + [(t, "locust", 20.0) for t in range(10, 50)]
    assert cpu_summary(s, (10, 49))["locust"]["max_pct"] == 20.0
    assert not assess(samples=s, window_ns=(10, 49), health={}, links={})["flagged"]


def test_loop_lag_link_lateness_and_locust_warnings_are_flagged() -> None:
    lagging = {"loop_lag": {"n": 100, "p50_ms": 5, "p99_ms": 45.0, "max_ms": 60}}
    check = assess(samples=[], window_ns=None, health={"realtime": lagging}, links=_links(7.5),
                   locust_log="WARNING CPU usage above 90%! This may constrain")  # fmt: skip
    text = " | ".join(check["flags"])
    assert "realtime event-loop lag" in text
    assert "link client_worker up releases late" in text
    assert "Locust warned" in text


def test_cpu_sampler_measures_a_busy_process() -> None:
    with CpuSampler({"me": os.getpid()}, interval_s=0.05) as sampler:
        x = 0
        for i in range(3_000_000):
            x += i
    if sampler.supported:
        assert sampler.samples and max(p for _, _, p in sampler.samples) > 20


async def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    import time

    monitor = LoopLagMonitor(interval_s=0.01)
    monitor.start()
    await asyncio.sleep(0.03)
    time.sleep(0.08)  # noqa: ASYNC251 (blocking the loop is the point)
    await asyncio.sleep(0.03)
    await monitor.stop()
    assert monitor.summary()["max_ms"] >= 50


def test_a_late_tail_over_too_few_chunks_is_not_a_flag() -> None:
    few = {"n": 32, "p50_ms": 0.05, "p99_ms": 9.0, "max_ms": 9.0}
    links = {"client_realtime": {"stats": {"up": {"late": few}}}}
    assert assess(samples=[], window_ns=None, health={}, links=links)["flags"] == []


def _quiet(**kw: object) -> dict:
    return assess(samples=samples(35.0), window_ns=None, health={"worker": QUIET_LAG},
                  links=_links(0.4), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_late_llm_releases_flag_a_cell_the_other_signals_miss() -> None:
    # a busy machine: no process at a full core, loop lag and links within their bounds, but
    # one release in five wakes 12 ms late
    late = [0.4] * 80 + [12.0] * 20
    check = _quiet(llm_lateness=late)
    assert check["flagged"]
    assert any("simulated model's timed releases late" in f for f in check["flags"])
    assert check["timer_lateness"]["llm_release"]["n"] == 100
    quiet = _quiet(llm_lateness=[0.4] * 95 + [12.0] * 5)  # a tail past the p90 moves no median
    assert not quiet["flagged"]


def test_late_client_sends_are_flagged_and_few_values_are_not_judged() -> None:
    assert _quiet(send_lateness=[0.5] * 50 + [9.0] * 50)["flagged"]
    few = _quiet(send_lateness=[30.0] * 19)
    assert not few["flagged"] and few["timer_lateness"]["client_send"]["n"] == 19
    none = _quiet()
    assert none["timer_lateness"]["client_send"] == {"n": 0.0} and not none["flagged"]


def test_flags_between_processes_are_told_from_flags_inside_one() -> None:
    # a late link or late client sends delay messages between processes only
    between = assess(samples=[], window_ns=None, health={}, links=_links(7.5),
                     send_lateness=[9.0] * 50)  # fmt: skip
    assert len(between["flags"]) == 3 and between_processes_only(between["flags"])
    # a lagging loop, a busy process or late model releases disturb what is timed inside one
    lagging = {"loop_lag": {"n": 100, "p50_ms": 5, "p99_ms": 45.0, "max_ms": 60}}
    for check in (
        assess(samples=[], window_ns=None, health={"worker": lagging}, links=_links(7.5)),
        assess(samples=samples(97.0), window_ns=None, health={}, links=_links(7.5)),
        _quiet(llm_lateness=[12.0] * 50, send_lateness=[9.0] * 50),
    ):
        assert check["flagged"] and not between_processes_only(check["flags"])
    assert not between_processes_only([]) and not between_processes_only([""])


def test_send_lateness_closed_loop_is_the_gap_after_a_reply_less_the_think_time() -> None:
    ms = 1_000_000
    rows = [
        # user a: replies at 100 and 400 ms, next sends 100.5 ms (think 100) and 110 ms after
        {"user": "a", "send_ns": 0, "recv_ns": 100 * ms, "status": "ok"},
        {"user": "a", "send_ns": 200 * ms + ms // 2, "recv_ns": 400 * ms, "status": "ok"},
        {"user": "a", "send_ns": 510 * ms, "recv_ns": None, "status": "timeout"},
        # after a failure the user reconnects: that gap is not lateness
        {"user": "a", "send_ns": 5_000 * ms, "recv_ns": 5_100 * ms, "status": "ok"},
        # user b, out of order in the rows: sorted per user by send time
        {"user": "b", "send_ns": 150 * ms, "recv_ns": 160 * ms, "status": "ok"},
        {"user": "b", "send_ns": 10 * ms, "recv_ns": 50 * ms, "status": "ok"},
    ]
    got = send_lateness_ms(rows, open_loop=False, think_ms=100.0)
    assert sorted(got) == pytest.approx([0.0, 0.5, 10.0])


def test_send_lateness_open_loop_is_send_less_intended() -> None:
    rows: list[dict[str, int | None]] = [
        {"send_ns": 7_000_000, "intended_ns": 4_000_000},
        {"send_ns": 1, "intended_ns": 5},
        {"send_ns": None, "intended_ns": 3},
    ]
    assert send_lateness_ms(rows, open_loop=True) == pytest.approx([3.0, 0.0])


def test_lateness_recorder_appends_batches_the_reader_sums_up(tmp_path: Path) -> None:
    now = [0.0]
    rec = LatenessRecorder(tmp_path, flush_s=0.2, clock=lambda: now[0])
    rec.record(0.003)  # first record flushes at once
    rec.record(-0.0005)  # woke early: 0
    now[0] = 0.1
    rec.record(0.010)  # within flush_s: kept for the next flush
    assert read_lateness(tmp_path) == pytest.approx([3.0])
    now[0] = 0.3
    rec.record(0.001)
    assert sorted(read_lateness(tmp_path)) == pytest.approx([0.0, 1.0, 3.0, 10.0])
    (tmp_path / "llm-lateness-1.txt").write_text("2.5,junk,nan,-1\n")
    assert sorted(read_lateness(tmp_path)) == pytest.approx([0.0, 1.0, 2.5, 3.0, 10.0])
    assert rec.n == 4
    off = LatenessRecorder(None)
    off.record(0.5)
    assert off.n == 1 and off.pending == []


async def test_simulated_llm_records_the_lateness_of_each_timed_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from travelagent.agent.llm import lateness
    from travelagent.agent.llm.simulated import SimulatedLLM

    rec = LatenessRecorder(tmp_path, flush_s=0.01)
    monkeypatch.setattr(lateness, "RECORDER", rec)
    llm = SimulatedLLM(profile="fast-hosted-like")
    msgs = [{"role": "user", "content": "hotels in Lisbon"}]
    await llm.complete(msgs, trace=None, process="worker")
    assert rec.n == 2  # the first token and the end
    tokens = [t async for t in llm.stream(msgs, trace=None, process="worker")]
    assert len(tokens) > 2 and rec.n == 4  # streamed: the first and the last token only
    await asyncio.sleep(0.05)  # the delayed flush writes the last batch
    values = read_lateness(tmp_path)
    assert len(values) == rec.n and all(v >= 0 for v in values)
    n = rec.n
    await SimulatedLLM(profile="instant").complete(msgs, trace=None, process="worker")
    assert rec.n == n  # nothing timed, nothing recorded
