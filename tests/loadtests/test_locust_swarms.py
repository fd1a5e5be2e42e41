"""Locust stopped the way people stop it: a busy swarm stopped from the web UI three times in
one session, then quit. Each swarm is its own merged run; messages in flight at a stop are
recorded as ``stopped``, never as failures; Locust exits cleanly (no libev abort)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body.strip().startswith(b"{") else {}


def _post(url: str, form: dict[str, str]) -> dict:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return json.loads(r.read())


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_state(ui: str, states: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = str(_get(f"{ui}/stats/requests").get("state"))
        if state in states:
            return state
        time.sleep(0.2)
    raise TimeoutError(f"Locust never reached {states}")


def test_a_busy_swarm_stopped_from_the_web_ui_three_times_leaves_three_clean_runs(
    tmp_path: Path, tf: float
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sport, wport = free_port(), free_port()
    standin = subprocess.Popen(
        [sys.executable, str(ROOT / "loadtests" / "standin.py"), "--port", str(sport),
         "--delay-ms", "300"], env=env, cwd=ROOT,
    )  # fmt: skip
    run_dir = tmp_path / "run"
    locust = None
    try:
        wait_http(f"http://127.0.0.1:{sport}/healthz", 20 * tf)
        locust = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
             "--web-host", "127.0.0.1", "--web-port", str(wport), "--arch", "gateway",
             "-H", f"http://127.0.0.1:{sport}", "--run-dir", str(run_dir),
             "--csv", str(tmp_path / "locust"), "--stop-timeout", "0", "--timeout-s", "10"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        ui = f"http://127.0.0.1:{wport}"
        wait_http(ui, 30 * tf)
        for _ in range(3):
            _post(f"{ui}/swarm", {"user_count": "12", "spawn_rate": "12",
                                  "host": f"http://127.0.0.1:{sport}"})  # fmt: skip
            _wait_state(ui, {"running"}, 20 * tf)
            time.sleep(1.5)  # every user has a message in flight (300 ms replies)
            _post(f"{ui}/stop", {})
            _wait_state(ui, {"stopped"}, 20 * tf)
            last_failures = _get(f"{ui}/stats/requests")["total_fail_per_sec"]
            assert last_failures == 0
        locust.terminate()  # SIGTERM, as a service manager would
        out, _ = locust.communicate(timeout=60 * tf)
    finally:
        for p in (locust, standin):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
    assert "libev" not in out and "Traceback" not in out, out[-3000:]
    runs = [run_dir, run_dir.with_name("run-swarm2"), run_dir.with_name("run-swarm3")]
    stopped = 0
    for r in runs:
        assert (r / "messages.parquet").exists(), f"{r.name} was not merged"
        assert not list((r / "parts").glob("*.parquet")), f"{r.name} left part files"
        msgs = pd.read_parquet(r / "messages.parquet")
        assert len(msgs) > 0 and msgs["msg_id"].is_unique
        assert set(msgs["status"]) <= {"ok", "stopped"}, msgs["status"].value_counts()
        assert (msgs["run"] == r.name).all()
        stopped += int((msgs["status"] == "stopped").sum())
    assert stopped > 0  # the stops did cut messages short, and they were kept
    stats = pd.read_csv(tmp_path / "locust_stats.csv")
    assert (stats["Failure Count"] == 0).all()
    # time to first content is a table of its own: the aggregate counts each message once
    agg = stats[stats["Name"] == "Aggregated"]["Request Count"].iloc[0]
    assert agg == stats[stats["Name"] != "Aggregated"]["Request Count"].sum()
    assert not stats["Name"].str.endswith(":first").any()
    assert (tmp_path / "locust_first_stats.csv").exists()
