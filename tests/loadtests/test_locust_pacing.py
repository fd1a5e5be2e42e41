"""Open-loop pacing under slow replies, and a two-process Locust run merged into one run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port

from travelagent.client.records import MessageRecord, Recorder, finalize_run
from travelagent.runner.procs import ServedProcess

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000

pytestmark = pytest.mark.slow


def standin(*flags: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(ROOT / "loadtests" / "standin.py"), "--port", str(port), *flags]
    with ServedProcess(argv, f"{url}/healthz"):
        yield url


@pytest.fixture(scope="module")
def slow_gateway() -> Iterator[str]:
    yield from standin("--delay-ms", "400")


@pytest.fixture(scope="module")
def fast_gateway() -> Iterator[str]:
    yield from standin("--delay-ms", "2", "--stream")


def locust(run_dir: Path, url: str, *args: str, tf: float) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary", "--run-dir", str(run_dir), "--csv",
        str(run_dir / "locust"), "--arch", "gateway", "--gateway-url", url, *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60 * tf)
    assert res.returncode in (0, 1), res.stderr[-3000:]
    return res


def csv_count(run_dir: Path, name: str) -> int:
    with open(run_dir / "locust_stats.csv") as fh:
        rows = {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(fh)}
    return rows[name]


def test_open_loop_keeps_its_schedule_when_replies_are_slow(
    slow_gateway: str, tmp_path: Path, tf: float
) -> None:
    # Replies take 400 ms and one socket is answered in order; the schedule asks for one
    # message every 200 ms. A closed loop would send half as many; the open loop must not.
    run_dir = tmp_path / "open"
    # 6 s: on a loaded machine a user may start a few seconds after Locust's clock does
    locust(run_dir, slow_gateway, "-u", "2", "-r", "2", "-t", "6s", "--pace", "open",
           "--rate-per-user", "5", "--stop-timeout", "10", "--timeout-s", "10", tf=tf)  # fmt: skip
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    assert (msgs["status"] == "ok").all(), msgs["status"].value_counts()
    assert len(msgs) == csv_count(run_dir, "gateway")
    for _, user in msgs.sort_values("intended_ns").groupby("user"):
        # Locust's -t is approximate (start-up eats into it): judge by the data instead.
        assert len(user) >= 6
        gaps = user["intended_ns"].diff().dropna()
        assert (gaps == 200 * MS).all()  # every scheduled send happened, exactly on schedule
        lag = user["send_ns"] - user["intended_ns"]
        assert (lag >= 0).all() and lag.median() < 20 * MS * tf
        # A closed loop would have waited 400 ms per reply: the sends would be twice as far apart.
        span_s = (user["send_ns"].iloc[-1] - user["send_ns"].iloc[0]) / 1e9
        assert len(user) > 1 + span_s / 0.4 * 1.5
    service = msgs["recv_ns"] - msgs["send_ns"]
    corrected = msgs["recv_ns"] - msgs["intended_ns"]
    assert (corrected >= service).all()
    assert service.max() > 1000 * MS  # replies queued up behind the schedule: visible, not hidden


def test_a_run_drives_load_for_its_whole_run_time(
    fast_gateway: str, tmp_path: Path, tf: float
) -> None:
    """``-t`` counts from when Locust arms it, not from a clock left behind by the start-up
    (which cut a 4 s run to 1.5-2.5 s of load)."""
    run_dir = tmp_path / "whole"
    res = locust(
        run_dir, fast_gateway, "-u", "2", "-r", "2", "-t", "4s", "--stop-timeout", "2",
        "--stream", "false", tf=tf,
    )  # fmt: skip
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    span_s = (msgs["send_ns"].max() - msgs["send_ns"].min()) / 1e9
    assert span_s >= 4 - 1.0 * tf, span_s
    assert "part files hold" not in res.stderr  # the merged run counts as recorded


def test_two_processes_merge_into_one_run_without_loss_or_duplicates(
    fast_gateway: str, tmp_path: Path, tf: float
) -> None:
    run_dir = tmp_path / "two"
    port = str(free_port())  # a master port of its own, away from any other Locust run
    locust(
        run_dir, fast_gateway, "-u", "4", "-r", "4", "-t", "3s", "--processes", "2",
        "--master-bind-port", port, "--master-port", port, "--stop-timeout", "3",
        "--stream", "true", "--think-ms", "20", tf=tf,
    )  # fmt: skip
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    assert not (run_dir / "parts").exists()  # merged by the master
    assert msgs["source"].nunique() == 2  # both worker processes recorded
    assert msgs["msg_id"].is_unique and msgs["user"].nunique() == 4
    assert len(msgs) == csv_count(run_dir, "gateway:stream")  # nothing lost, nothing doubled
    assert finalize_run(run_dir)[0] == len(msgs)  # finalizing again changes nothing


def test_finalize_keeps_one_row_per_message_shipped_twice(tmp_path: Path) -> None:
    rec = MessageRecord("r", "c", "gateway", "", False, "u", "u", "m1", 1, 1, 2, 3)
    for tag in ("a", "b"):
        r = Recorder(tmp_path, tag=tag)
        r.add(rec)
        r.add(MessageRecord("r", "c", "gateway", "", False, "u", "u", f"only-{tag}", 1, 1))
        r.flush()
    n_msgs, _ = finalize_run(tmp_path)
    ids = sorted(pd.read_parquet(tmp_path / "messages.parquet")["msg_id"])
    assert n_msgs == 3 and ids == ["m1", "only-a", "only-b"]


def test_steps_shape_adds_users_step_by_step(fast_gateway: str, tmp_path: Path, tf: float) -> None:
    run_dir = tmp_path / "steps"
    params = '{"users": 4, "step_users": 2, "step_s": 2}'
    locust(run_dir, fast_gateway, "-t", "4s", "--shape", "steps", "--shape-params", params,
           "--stop-timeout", "2", "--think-ms", "50", tf=tf)  # fmt: skip
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    starts = msgs.groupby("user")["send_ns"].min().sort_values()
    assert len(starts) == 4
    first, second = starts.iloc[:2], starts.iloc[2:]
    gap_s = (second.min() - first.max()) / 1e9
    assert 1.5 < gap_s < 2.5 * tf  # the second pair joined one step (2 s) later


def test_closed_loop_users_start_spread_out(fast_gateway: str, tmp_path: Path, tf: float) -> None:
    # 4 users spawned together, first sends spread over 800 ms: 200 ms apart, not all at once
    run_dir = tmp_path / "spread"
    locust(run_dir, fast_gateway, "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "2",
           "--think-ms", "50", "--start-spread-ms", "800", tf=tf)  # fmt: skip
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    starts = msgs.groupby("user")["send_ns"].min().sort_values()
    assert len(starts) == 4
    gaps_ms = starts.diff().dropna() / MS
    assert (gaps_ms > 150).all() and (gaps_ms < 250 * tf).all(), gaps_ms.tolist()
