"""The testbed's self-check: flags raised from synthetic samples, none from quiet ones."""

from __future__ import annotations

import asyncio
import os

from travelagent.monitor import CpuSampler, LoopLagMonitor
from travelagent.runner.selfcheck import assess, cpu_summary

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
