from __future__ import annotations

import statistics
from typing import Any

import pytest

from travelagent.link.faults import FaultError, Faults, expand_schedule
from travelagent.link.schedule import (
    DirectionSchedule,
    JitterSampler,
    LinkShape,
    ShapeError,
    serialisation_ns,
)

MS = 1_000_000


def schedule(opened_ns: int = 0, seed: int = 1, **shape: float | str) -> DirectionSchedule:
    return DirectionSchedule(LinkShape(**shape), opened_ns, JitterSampler(seed))  # type: ignore[arg-type]


def test_burst_of_chunks_arrives_together_one_delay_later() -> None:
    s = schedule(delay_ms=10, setup_rtts=0)
    times = [s.deliver_at(5 * MS, 100) for _ in range(50)]
    assert times == [15 * MS] * 50


def test_delay_counts_from_each_chunks_own_arrival() -> None:
    s = schedule(delay_ms=10, setup_rtts=0)
    assert [s.deliver_at(t * MS, 10) for t in (0, 1, 7)] == [10 * MS, 11 * MS, 17 * MS]


@pytest.mark.parametrize("kind", ["normal", "uniform", "pareto"])
def test_order_is_kept_under_large_jitter(kind: Any) -> None:
    s = schedule(delay_ms=5, jitter_ms=20, jitter=kind, setup_rtts=0)
    times = [s.deliver_at(i * MS // 10, 10) for i in range(2000)]
    assert times == sorted(times)
    assert all(t >= i * MS // 10 for i, t in enumerate(times))  # never before arrival


def test_jitter_is_seeded_and_reproducible() -> None:
    a = [JitterSampler(7).draw_ns("normal", 3) for _ in range(1)]
    sa, sb = JitterSampler(7), JitterSampler(7)
    assert [sa.draw_ns("uniform", 3) for _ in range(100)] == [
        sb.draw_ns("uniform", 3) for _ in range(100)
    ]
    assert a == [JitterSampler(7).draw_ns("normal", 3)]


def test_jitter_distributions_have_the_documented_shape() -> None:
    s = JitterSampler(3)
    uniform = [s.draw_ns("uniform", 2) / MS for _ in range(5000)]
    assert min(uniform) >= -2 and max(uniform) <= 2
    normal = [s.draw_ns("normal", 2) / MS for _ in range(5000)]
    assert abs(statistics.mean(normal)) < 0.2 and 1.7 < statistics.stdev(normal) < 2.3
    pareto = [s.draw_ns("pareto", 2) / MS for _ in range(20000)]
    assert min(pareto) >= 0 and 1.6 < statistics.mean(pareto) < 2.4
    assert max(pareto) > 10  # a long tail


def test_setup_cost_holds_only_the_first_bytes_of_a_connection() -> None:
    s = schedule(opened_ns=0, delay_ms=10, setup_rtts=1)  # RTT 20 ms
    assert s.deliver_at(0, 10) == 30 * MS  # handshake (20) + one-way (10)
    assert s.deliver_at(100 * MS, 10) == 110 * MS  # same connection: no set-up again


def test_setup_cost_scales_with_round_trips() -> None:
    s = schedule(opened_ns=1 * MS, delay_ms=5, setup_rtts=3)
    assert s.deliver_at(1 * MS, 1) == 1 * MS + 30 * MS + 5 * MS


def test_bandwidth_paces_chunks_one_after_another() -> None:
    s = schedule(delay_ms=10, setup_rtts=0, bandwidth_kbps=80)  # 1000 bytes take 100 ms
    assert serialisation_ns(1000, 80) == 100 * MS
    assert s.deliver_at(0, 1000) == 110 * MS
    assert s.deliver_at(0, 1000) == 210 * MS
    assert s.deliver_at(500 * MS, 1000) == 610 * MS  # the wire was idle again


def test_shape_change_applies_to_later_chunks_without_reordering() -> None:
    s = schedule(delay_ms=50, setup_rtts=0)
    first = s.deliver_at(0, 1)
    s.set_shape(LinkShape(delay_ms=1, setup_rtts=0))
    assert s.deliver_at(1 * MS, 1) == first  # would be 2 ms, but must not overtake
    assert s.deliver_at(100 * MS, 1) == 101 * MS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"delay_ms": -1}, "delay_ms must not be negative"),
        ({"jitter": "cauchy"}, "jitter must be one of normal, uniform, pareto"),
        ({"setup_rtts": "2"}, "setup_rtts must be a number"),
    ],
)
def test_bad_shape_values_are_rejected_with_the_reason(changes: Any, message: Any) -> None:
    with pytest.raises(ShapeError, match=message):
        LinkShape(**changes)


def test_shape_update_with_unknown_key_names_the_valid_keys() -> None:
    with pytest.raises(ShapeError, match="valid keys: bandwidth_kbps, delay_ms"):
        LinkShape().updated({"latency": 3})


def test_faults_from_control_bodies() -> None:
    f = Faults().updated({"reset": True})
    assert f.reset and not f.refuse
    f = f.updated({"fault": "refuse"})
    assert f.refuse and f.reset
    f = f.updated({"fault": "refuse", "on": False})
    assert not f.refuse
    assert f.updated({"slow_close": True}).slow_close_ms == 2000
    assert f.updated({"slow_close_ms": 300}).slow_close_ms == 300
    assert f.updated({"clear": True}) == Faults()


@pytest.mark.parametrize(
    "body", [{"reboot": True}, {"fault": "melt"}, {"reset": "yes"}, [1], {"slow_close_ms": -1}]
)
def test_bad_fault_requests_are_rejected(body: Any) -> None:
    with pytest.raises(FaultError):
        Faults().updated(body)


def test_schedule_entry_with_duration_becomes_on_and_off_events_in_time_order() -> None:
    events = expand_schedule(
        [
            {"at_s": 10, "link": "a", "fault": "reset", "duration_s": 2},
            {"at_s": 5, "link": "b", "fault": "blackhole"},
        ]
    )
    assert [(e.at_s, e.link, e.fault, e.on) for e in events] == [
        (5, "b", "blackhole", True),
        (10, "a", "reset", True),
        (12, "a", "reset", False),
    ]
