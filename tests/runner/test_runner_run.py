"""``travelagent run`` end to end: a complete run; a failed cell and an interrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def travelagent_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "travelagent", "run", *args]


def test_tiny_experiment_produces_a_complete_run_directory(tmp_path: Path, tf: float) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        travelagent_run("tiny", "--out", str(out), "--no-progress"),
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120 * tf,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["kind"] == "experiment" and info["status"] == "ok"
    assert info["experiment"]["name"] == "tiny"
    assert [c["status"] for c in info["cells"]] == ["ok", "ok"]
    msgs = pd.read_parquet(out / "messages.parquet")
    stamps = pd.read_parquet(out / "stamps.parquet")
    assert set(stamps["msg_id"]) == set(msgs["msg_id"]) and msgs["msg_id"].is_unique
    assert (msgs["run"] == out.name).all()
    for cell in info["cells"]:
        name = cell["cell"]
        rows = msgs[msgs["cell"] == name]
        assert len(rows) == cell["messages"] > 0
        assert cell["scenario"]["name"] == "loopback" and cell["users"] == 2
        assert {"arch", "publish", "streaming", "shape", "duration_s", "started", "ended"} <= set(
            cell
        )
        d = out / "cells" / name
        with open(d / "locust_stats.csv") as fh:
            counts = {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(fh)}
        path = "gateway:stream" if cell["arch"] == "gateway" else "realtime:http-pooled:stream"
        assert counts[path] == len(rows)
        assert (d / "locust.html").stat().st_size > 0
        for kind in ("corrected", "uncorrected"):
            log = (d / f"latency-{kind}.hlog").read_text()
            assert "StartTime" in log and "HIST" in log
        links = json.loads((d / "links.json").read_text())
        used = "client_worker" if cell["arch"] == "gateway" else "client_realtime"
        assert links[used]["stats"]["connections"] > 0
        # the timer lateness the self-check judges: the model's releases (the loopback preset's
        # `note` profile sleeps) written by the agent's process, and the clients' sends
        timers = json.loads((d / "selfcheck.json").read_text())["timer_lateness"]
        assert list((d / "llm_lateness").glob("llm-lateness-*.txt"))
        assert timers["llm_release"]["n"] >= len(rows) // 2 > 0
        assert timers["client_send"]["n"] > 0
    assert set(msgs["arch"]) == {"gateway", "realtime"}
    assert not (out / "parts").exists()


def test_failed_cell_is_reported_and_interrupt_keeps_what_ran(tmp_path: Path, tf: float) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    exp = tmp_path / "two.toml"
    exp.write_text(
        f"""
name = "two"
durations_s = [60]
[load]
stop_timeout_s = 2
[[scenarios]]
name = "taken"
preset = "loopback"
arch = "gateway"
overrides = {{ "ports.worker" = {port} }}
[[scenarios]]
name = "long"
preset = "loopback"
arch = "gateway"
[[shapes]]
name = "u1"
users = 1
"""
    )
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        travelagent_run(str(exp), "--out", str(out), "--no-progress"),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # Wait until the second cell's Locust has recorded something, then press Ctrl-C.
        stats = out / "cells" / "long-u1-60s" / "locust_stats.csv"
        deadline = time.monotonic() + 60 * tf
        while time.monotonic() < deadline and not stats.exists():
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60 * tf)
    finally:
        busy.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted"
    failed, stopped = info["cells"]
    assert failed["status"] == "failed" and failed["error"] and failed["messages"] == 0
    assert stopped["status"] == "interrupted" and stopped["messages"] > 0
    msgs = pd.read_parquet(out / "messages.parquet")
    assert len(msgs) == stopped["messages"] and (msgs["cell"] == "long-u1-60s").all()
