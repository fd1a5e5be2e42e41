from __future__ import annotations

import itertools

import pytest

from travelagent.runner.pacing import Pacer, start_offset_s

MS = 1_000_000


def test_uniform_schedule_is_start_plus_k_over_rate() -> None:
    p = Pacer(10.0, start_ns=1_000 * MS)
    assert p.due(1_000 * MS) == [1_000 * MS]
    assert p.due(1_050 * MS) == []
    assert p.sleep_s(1_050 * MS) == pytest.approx(0.05)
    assert p.due(1_100 * MS) == [1_100 * MS]
    assert p.late == 0 and p.sent == 2


def test_late_wakeup_sends_every_overdue_message_with_its_own_intended_time() -> None:
    p = Pacer(10.0, start_ns=0)
    p.due(0)
    # The sender was blocked for 350 ms: three sends are overdue, and all three are late.
    assert p.due(350 * MS) == [100 * MS, 200 * MS, 300 * MS]
    assert p.late == 3
    assert p.next_ns == 400 * MS  # the schedule is kept, not shifted


def test_wakeup_within_tolerance_is_not_late() -> None:
    p = Pacer(10.0, start_ns=0, late_tolerance_ns=5 * MS)
    assert p.due(4 * MS) == [0]
    assert p.late == 0


def test_poisson_arrivals_are_seeded_and_average_the_rate() -> None:
    a = Pacer(100.0, start_ns=0, arrivals="poisson", seed=7)
    b = Pacer(100.0, start_ns=0, arrivals="poisson", seed=7)
    ta, tb = a.due(10**10), b.due(10**10)  # ten seconds
    assert ta == tb
    assert 900 < len(ta) < 1100
    gaps = {y - x for x, y in itertools.pairwise(ta)}
    assert len(gaps) > 100  # not a fixed interval


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        Pacer(rate, start_ns=0)


def test_unknown_arrivals_are_refused() -> None:
    with pytest.raises(ValueError, match="arrivals"):
        Pacer(1.0, start_ns=0, arrivals="bursty")


def test_first_sends_are_spread_evenly_over_the_window() -> None:
    # Locust numbers its users 1, 2, ...: 8 users over 1 s start 125 ms apart, each offset once
    offsets = sorted(start_offset_s(k, 8, 1000.0) for k in range(1, 9))
    assert offsets == pytest.approx([i * 0.125 for i in range(8)])
    assert all(0 <= o < 1.0 for o in offsets)


def test_no_spread_starts_everyone_at_once() -> None:
    assert {start_offset_s(k, 8, 0.0) for k in range(1, 9)} == {0.0}
    assert start_offset_s(3, 1, 500.0) == 0.0


@pytest.mark.parametrize(
    ("user", "users", "spread"),
    [(1, 0, 10.0), (1, 8, -1.0), (1, 8, float("nan")), (1, 8, float("inf")), (-1, 8, 10.0)],
)
def test_bad_spread_arguments_are_refused(user: int, users: int, spread: float) -> None:
    with pytest.raises(ValueError):
        start_offset_s(user, users, spread)
