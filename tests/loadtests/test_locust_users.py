"""Each Locust user class, headless for a few seconds, against a topology started here."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from travelagent.config import JWT_SECRET_ENV
from travelagent.topology.launcher import Topology
from travelagent.wire.trace import GATEWAY_PATH, REALTIME_PATH

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_locust(
    run_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    tf: float = 1.0,
    users: int = 3,
    seconds: int = 3,
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--run-dir",
        str(run_dir),
        "--csv",
        str(run_dir / "locust"),
        "--timeout-s",
        "10",
        *args,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    res = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=60 * tf
    )
    assert res.returncode in (0, 1), res.stderr[-3000:]
    return res


def csv_counts(run_dir: Path) -> dict[tuple[str, str], int]:
    with open(run_dir / "locust_stats.csv") as fh:
        return {
            (row["Type"], row["Name"]): int(row["Request Count"])
            for row in csv.DictReader(fh)
            if row["Name"] != "Aggregated"
        }


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with Topology("loopback", run_dir=tmp_path_factory.mktemp("topology")) as t:
        yield t


def check_run(run_dir: Path, name: str, path: tuple[str, ...], arch: str) -> pd.DataFrame:
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    stamps = pd.read_parquet(run_dir / "stamps.parquet")
    counts = csv_counts(run_dir)
    assert len(msgs) > 0
    assert counts[("WS", name)] == len(msgs), (counts, len(msgs))
    assert ("WS", f"{name}:first") not in counts  # first content: its own table, not doubled
    with open(run_dir / "locust_first_stats.csv") as fh:
        first = {row["Name"]: int(row["Count"]) for row in csv.DictReader(fh)}
    assert first[name] == int((msgs["status"] == "ok").sum())
    assert msgs["msg_id"].is_unique
    assert (msgs["status"] == "ok").all(), msgs[msgs["status"] != "ok"][["status", "error"]]
    assert (msgs["arch"] == arch).all() and (msgs["cell"] == "c1").all()
    assert (msgs["run"] == run_dir.name).all()
    assert (msgs["intended_ns"] == msgs["send_ns"]).all()  # closed loop
    assert (msgs["send_ns"] < msgs["first_ns"]).all() and (
        msgs["first_ns"] <= msgs["recv_ns"]
    ).all()
    assert (msgs["chunks"] > 0).all() and msgs["streaming"].all()
    one = stamps[stamps["msg_id"] == msgs["msg_id"].iloc[0]].sort_values("seq")
    assert list(one["name"]) == list(path)
    assert one["t_ns"].iloc[0] == msgs["send_ns"].iloc[0]
    assert one["t_ns"].iloc[-1] == msgs["recv_ns"].iloc[0]
    return msgs


def test_gateway_user_records_every_message_with_every_stamp(
    topo: Topology, tmp_path: Path, tf: float
) -> None:
    run_dir = tmp_path / "gw"
    run_locust(
        run_dir,
        "--arch",
        "gateway",
        "--gateway-url",
        topo.urls["gateway"],
        "--stream",
        "true",
        "--cell",
        "c1",
        tf=tf,
    )
    msgs = check_run(run_dir, "gateway:stream", GATEWAY_PATH, "gateway")
    assert (msgs["publish"] == "").all() and msgs["user"].nunique() == 3


def test_realtime_user_records_the_whole_realtime_path(
    topo: Topology, tmp_path: Path, tf: float
) -> None:
    run_dir = tmp_path / "rt"
    run_locust(
        run_dir,
        "--arch",
        "realtime",
        "--realtime-url",
        topo.urls["realtime"],
        "--publish",
        "http-pooled",
        "--stream",
        "true",
        "--cell",
        "c1",
        tf=tf,
        env={JWT_SECRET_ENV: topo.secrets[JWT_SECRET_ENV]},
    )
    msgs = check_run(run_dir, "realtime:http-pooled:stream", REALTIME_PATH, "realtime")
    assert (msgs["publish"] == "http-pooled").all()


def test_hybrid_user_talks_over_the_gateway_and_counts_room_presence(
    topo: Topology, tmp_path: Path, tf: float
) -> None:
    run_dir = tmp_path / "hy"
    run_locust(
        run_dir,
        "--arch",
        "hybrid",
        "--gateway-url",
        topo.urls["gateway"],
        "--realtime-url",
        topo.urls["realtime"],
        "--stream",
        "true",
        "--cell",
        "c1",
        f"--jwt-secret={topo.secrets[JWT_SECRET_ENV]}",
        tf=tf,
        seconds=6,  # long enough that every user is in the room on a loaded machine
    )
    msgs = check_run(run_dir, "hybrid:stream", GATEWAY_PATH, "hybrid")
    # Users join one room one after another: the k-th to join is seen by the k-1 before it,
    # so the joins seen number at least (users in the room) - 1.
    users = msgs["user"].nunique()
    assert users >= 2
    assert csv_counts(run_dir).get(("PUSH", "room:join"), 0) >= users - 1


def test_realtime_user_with_a_wrong_secret_records_connect_failures_not_crashes(
    topo: Topology, tmp_path: Path, tf: float
) -> None:
    run_dir = tmp_path / "bad"
    res = run_locust(
        run_dir,
        "--arch",
        "realtime",
        "--realtime-url",
        topo.urls["realtime"],
        "--jwt-secret",
        "not-the-secret",
        "--cell",
        "c1",
        users=1,
        seconds=2,
        tf=tf,
    )
    assert res.returncode == 1
    counts = csv_counts(run_dir)
    assert counts[("CONNECT", "realtime")] >= 1
    assert ("WS", "realtime") not in counts
