"""From raw trials to figures with targets and the printed table (synthetic numbers)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from travelagent.bench.loadgen import cpu_per_message_ms, cpu_seconds, locust_rate, whole_seconds
from travelagent.bench.report import build_rows
from travelagent.bench.table import fmt_value, render


def trial(case: Any, clients: Any, rnd: Any, p50: Any, rate: Any) -> dict[str, Any]:
    return {"case": case, "clients": clients, "round": rnd, "p50_ms": p50, "p99_ms": p50 * 3,
            "rate_per_s": rate}  # fmt: skip


def results() -> Any:
    trials = []
    for r in range(3):
        trials += [
            trial("floor-websockets", 1, r, 0.3 + r * 0.1, 3000),
            trial("floor-aiohttp", 1, r, 0.25, 3500),
            trial("gateway", 1, r, 0.6 + r * 0.2, 400),  # exactly 2x its round's floor
            trial("stamping/gateway", 1, r, 0.6 + r * 0.2, 400),
            trial("stamping/gateway-nostamps", 1, r, 0.6 + r * 0.2, 404),
            trial("realtime-ws-persistent-nostream", 1, r, 3.0, 250),
            trial("floor-websockets", 20, r, 2.0, 5000),
            trial("gateway", 20, r, 12.0, 1600),
            trial("realtime-ws-persistent-nostream", 20, r, 40.0, 500),
        ]
    return {
        "roundtrips": trials,
        "links": [
            {"round": r, "delay_ms": d, "p50": d + 0.05, "p99": d + 0.3, "direct_p50": 0.0}
            for r in range(3)
            for d in (0.0, 10.0)
        ],
        "memory": [
            {"round": 0, "server": s, "connections": 10_000, "per_connection_kib": k}
            for s, k in (("gateway", 15.0), ("realtime", 20.0))
        ],
        "loadgen": [
            {"round": 0, "generator": g, "target": "standin", "users": 20, "rate_per_s": v}
            for g, v in (("locust", 3000.0), ("asyncio", 6000.0))
        ],
    }


def by_label(rows: Any) -> dict[Any, Any]:
    return {r.label: r for r in rows}


def test_targets_are_judged_on_pairwise_medians() -> None:
    rows = by_label(build_rows(results()))
    ratio = rows["gateway @1 p50 / floor-websockets"]
    assert ratio.figure.values == pytest.approx((2.0, 2.0, 2.0)) and ratio.verdict == "met"
    assert rows["gateway @20 rate"].verdict == "met"
    assert rows["gateway @20 p50"].verdict == "met"
    assert rows["realtime-ws-persistent-nostream @1 p50 / gateway"].verdict == "missed"
    assert rows["realtime-ws-persistent-nostream @20 rate"].verdict == "missed"
    assert rows["gateway @1 rate cost"].figure.median == pytest.approx(1.0)  # percent
    assert rows["gateway @1 p50 cost"].verdict == "met"
    assert rows["0 ms added p50 (one direction)"].verdict == "met"
    assert rows["10 ms @1,000/s p50 error"].figure.median == pytest.approx(0.05)
    assert rows["gateway @10,000 idle per connection"].verdict == "met"
    assert rows["realtime @10,000 idle per connection"].verdict == "missed"
    assert rows["locust -> standin (20 users) rate"].verdict == "missed"
    assert rows["gateway @1 p99"].target is None and rows["gateway @1 p99"].verdict == ""
    assert not any(label.startswith("stamping/") for label in rows)  # only as the costs


def test_the_table_puts_every_target_beside_its_figure() -> None:
    text = render(build_rows(results()), rounds=3, skipped=[("peer", "no node")],
                  notes=["memory: 2 of 3 rounds"])  # fmt: skip
    assert "== round trip" in text and "== targets" in text
    target_lines = text.split("== targets")[1].splitlines()
    assert any("gateway @20 rate" in ln and "≥ 1,500 msg/s" in ln and "met" in ln
               for ln in target_lines)  # fmt: skip
    assert any("locust -> standin" in ln and "missed" in ln for ln in target_lines)
    assert "skipped: peer: no node" in text and "note: memory: 2 of 3 rounds" in text
    assert "2.00× (2.00×-2.00×) ✓" in text


def test_values_are_formatted_by_unit() -> None:
    assert fmt_value(1234.4, "msg/s") == "1,234"
    assert fmt_value(0.0512, "ms") == "0.051"
    assert fmt_value(12.345, "ms") == "12.3"
    assert fmt_value(2.5, "%") == "+2.5%"
    assert fmt_value(float("nan"), "ms") == "-"


def test_locust_rate_uses_whole_seconds_only() -> None:
    stats = [{"name": "gateway", "method": "WS", "num_requests": 70, "start_time": 0.0,
              "last_request_timestamp": 3.5,
              "num_reqs_per_sec": {"100": 5, "101": 30, "102": 30, "103": 5}}]  # fmt: skip
    assert locust_rate(stats) == (30.0, 70)


def test_locust_cpu_per_message_is_taken_over_the_rates_whole_seconds() -> None:
    stats = [{"name": "gateway", "method": "WS", "num_requests": 70, "start_time": 0.0,
              "last_request_timestamp": 3.5,
              "num_reqs_per_sec": {"100": 5, "101": 30, "102": 30, "103": 5}}]  # fmt: skip
    seconds = whole_seconds(stats)
    assert seconds == [(101, 30), (102, 30)]
    # CPU seconds at wall times: 1.0 s at 101 (start-up spent before), 1.6 s by 103.
    samples = [(99.5, 0.2), (100.9, 0.9), (101.0, 1.0), (102.5, 1.3), (103.0, 1.6), (104.0, 9.0)]
    assert cpu_per_message_ms(samples, seconds) == pytest.approx(600 / 60)
    assert math.isnan(cpu_per_message_ms(samples[3:], seconds))  # no sample before the span
    assert math.isnan(cpu_per_message_ms(samples, []))


def test_cpu_seconds_reads_this_process_and_none_for_a_gone_one() -> None:
    import os

    mine = cpu_seconds(os.getpid())
    assert mine is not None and mine >= 0
    assert cpu_seconds(2**22 + 12345) is None


def test_versus_summary_pairs_the_sides_round_by_round() -> None:
    from travelagent.bench.loadgen import versus_summary

    trials = [
        {"round": 0, "side": "old", "rate_per_s": 1000.0, "cpu_ms_per_message": 0.3},
        {"round": 0, "side": "new", "rate_per_s": 3000.0, "cpu_ms_per_message": 0.1},
        {"round": 1, "side": "new", "rate_per_s": 2000.0, "cpu_ms_per_message": 0.2},
        {"round": 1, "side": "old", "rate_per_s": 2000.0, "cpu_ms_per_message": float("nan")},
        {"round": 2, "side": "old", "rate_per_s": 500.0, "cpu_ms_per_message": 0.5},  # unpaired
    ]
    s = versus_summary(trials)
    assert s["rate_new_over_old"].values == pytest.approx((3.0, 1.0))
    assert s["cpu_old_over_new"].values == pytest.approx((3.0,))  # a NaN round is left out
    assert s["cpu_ms_per_message"]["old"].median == pytest.approx(0.4)
    assert s["rate_per_s"]["new"].median == pytest.approx(2500.0)
