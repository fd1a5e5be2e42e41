"""Counting a chaos phase on synthetic records: losses, errors, duplicates and recovery."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from travelagent.agent.store import SCHEMA
from travelagent.runner.chaos import parse_chaos
from travelagent.runner.count import count_fault, format_reasons, store_duplicates
from travelagent.runner.experiment import ExperimentError

S = 1_000_000_000


def msg(
    mid: str, status: str, send_s: float, recv_s: float | None = None, error: str = ""
) -> dict[str, Any]:
    return {
        "msg_id": mid,
        "status": status,
        "error": error,
        "send_ns": int(send_s * S),
        "recv_ns": None if recv_s is None else int(recv_s * S),
    }


def test_counts_every_outcome_and_the_first_ok_after_the_fault() -> None:
    rows = [
        msg("a", "ok", 0.1, 0.3),  # before the fault: not a recovery
        msg("b", "ok", 0.9, 1.6),  # sent before, answered after: not a recovery either
        msg("c", "lost", 1.1, error="connection closed before the reply"),
        msg("d", "timeout", 1.2, error="no complete reply before the timeout"),
        msg("e", "error", 1.3, error="agent error: host unreachable"),
        msg("f", "error", 1.4, error="agent error: host unreachable"),
        msg("g", "ok", 2.0, 2.75),  # the first ok of a message sent after the fault
        msg("h", "ok", 2.5, 2.9),
    ]
    c = count_fault("worker-kill", "gateway", rows, injected_ns=1 * S, started_ns=0,
                    finals={"a": 1, "b": 2, "g": 3})  # fmt: skip
    assert (c.sent, c.replied, c.errored, c.lost, c.other) == (8, 4, 2, 2, 0)
    assert c.duplicated_finals == 3  # b once more, g twice more
    assert c.duplicated == 3
    assert c.recovery_s == pytest.approx(1.75)
    assert c.injected_at_s == pytest.approx(1.0)
    assert c.error_reasons == {"agent error: host unreachable": 2}
    assert set(c.lost_reasons) == {
        "lost: connection closed before the reply",
        "timeout: no complete reply before the timeout",
    }
    row = c.row()
    assert row["lost"] == 2 and row["recovery_s"] == 1.75
    assert row["error_reasons"] == "agent error: host unreachable ×2"


def test_no_recovery_when_nothing_sent_after_the_fault_succeeds() -> None:
    rows = [msg("a", "ok", 0.5, 0.6), msg("b", "timeout", 1.5)]
    c = count_fault("link-blackhole:client_worker", "gateway", rows, injected_ns=1 * S)
    assert math.isnan(c.recovery_s) and c.row()["recovery_s"] == ""
    assert c.lost == 1 and c.duplicated == 0


def test_a_stopped_message_is_neither_replied_nor_lost_but_shows() -> None:
    c = count_fault("none", "p", [msg("a", "stopped", 0.1)], injected_ns=0)
    assert (c.replied, c.errored, c.lost, c.other) == (0, 0, 0, 1)


def test_reasons_commonest_first() -> None:
    assert format_reasons({"b": 1, "a": 3, "c": 1}) == "a ×3; b ×1; c ×1"


def _store(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    return conn


def _turn(conn: sqlite3.Connection, agent: str, mid: str, seq: int, *, done: bool = True) -> None:
    conn.execute("INSERT INTO messages VALUES (?, ?, 'user', 'hi', 1)", (agent, seq))
    conn.execute(
        "INSERT OR REPLACE INTO turns VALUES (?, ?, ?, ?, 'hi', ?, 1)",
        (agent, mid, "done" if done else "started", seq, "reply" if done else None),
    )
    if done:
        conn.execute("INSERT INTO messages VALUES (?, ?, 'assistant', 'reply', 1)",
                     (agent, seq + 1))  # fmt: skip


def test_store_duplicates_a_turn_run_twice_and_a_reply_committed_twice(tmp_path: Path) -> None:
    db = tmp_path / "agents.sqlite3"
    conn = _store(db)
    # clean agent: two turns, one started and never finished (its process died): no duplicate
    _turn(conn, "clean", "m1", 0)
    _turn(conn, "clean", "m2", 2)
    _turn(conn, "clean", "m3", 4, done=False)
    # a turn that ran again: its key was replaced, so the first user message has no key
    _turn(conn, "twice", "m1", 0)
    _turn(conn, "twice", "m1", 2)
    # a turn resumed twice: one key, one user message, two replies
    _turn(conn, "resumed", "m1", 0)
    conn.execute("INSERT INTO messages VALUES ('resumed', 2, 'assistant', 'again', 1)")
    conn.commit()
    conn.close()
    dups = store_duplicates([db, tmp_path / "missing.sqlite3"], ["clean", "twice", "resumed"])
    assert dups == {"twice": 1, "resumed": 1}
    assert store_duplicates([db], ["clean"]) == {}


def test_bad_chaos_files_are_refused_with_the_key() -> None:
    base = {"kind": "chaos", "scenarios": [{"preset": "loopback", "arch": "gateway"}]}
    assert parse_chaos(base).paths[0].name == "gateway-loopback"
    with pytest.raises(ExperimentError, match="faults: 'meteor'"):
        parse_chaos({**base, "faults": ["meteor"]})
    with pytest.raises(ExperimentError, match="arch must be one of gateway, realtime"):
        parse_chaos({**base, "scenarios": [{"preset": "loopback", "arch": "hybrid"}]})
    with pytest.raises(ExperimentError, match=r"phases\.hold_s must be a number"):
        parse_chaos({**base, "phases": {"hold_s": float("nan")}})
    with pytest.raises(ExperimentError, match=r"load\.users must be a whole number"):
        parse_chaos({**base, "load": {"users": 1.5}})
    with pytest.raises(ExperimentError, match="durations"):
        parse_chaos({**base, "durations_s": [3]})


def test_the_plan_only_has_faults_that_apply_to_the_path() -> None:
    exp = parse_chaos({
        "kind": "chaos",
        "faults": ["worker-kill", "realtime-kill", "agents-kill", "link-blackhole"],
        "scenarios": [
            {"name": "g", "preset": "loopback", "arch": "gateway"},
            {"name": "r", "preset": "chaos", "arch": "realtime"},
        ],
    })  # fmt: skip
    g, r = exp.paths
    # loopback: agents in the worker, so no agent host to kill and no worker_agents link
    assert [f.name for f in exp.plan(g)] == ["worker-kill", "link-blackhole:client_worker"]
    assert [f.name for f in exp.plan(r)] == [
        "worker-kill", "realtime-kill", "agents-kill", "link-blackhole:client_realtime",
        "link-blackhole:realtime_worker", "link-blackhole:worker_realtime",
        "link-blackhole:worker_agents",
    ]  # fmt: skip


def test_a_link_fault_may_name_one_link() -> None:
    exp = parse_chaos({
        "kind": "chaos",
        "faults": ["link-blackhole:client_worker", "link-reset:client_realtime", "client-reset"],
        "scenarios": [
            {"name": "g", "preset": "loopback", "arch": "gateway"},
            {"name": "r", "preset": "chaos", "arch": "realtime"},
        ],
    })  # fmt: skip
    g, r = exp.paths
    assert [f.name for f in exp.plan(g)] == ["link-blackhole:client_worker", "client-reset"]
    assert [f.name for f in exp.plan(r)] == ["link-reset:client_realtime", "client-reset"]
    base = {"kind": "chaos", "scenarios": [{"preset": "loopback", "arch": "gateway"}]}
    with pytest.raises(ExperimentError, match="no link 'client_moon'"):
        parse_chaos({**base, "faults": ["link-blackhole:client_moon"]})
    with pytest.raises(ExperimentError, match="'worker-kill:x' is not a fault kind"):
        parse_chaos({**base, "faults": ["worker-kill:x"]})


def test_a_message_the_client_raised_on_is_still_an_error_record() -> None:
    from travelagent.runner.load import Target, raised_record

    target = Target("gateway", "http://127.0.0.1:1", "", "r1", "gateway")
    rec = raised_record(target, "p1-u0", 8.0, "client raised OSError: refused")
    assert (rec.status, rec.error, rec.user, rec.cell) == (
        "error", "client raised OSError: refused", "p1-u0", "gateway",
    )  # fmt: skip
    assert rec.msg_id and rec.send_ns > 0
