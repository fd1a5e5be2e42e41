"""The real components (worker, realtime, links) brought up by the launcher, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.config import JWT_SECRET_ENV
from travelagent.topology.launcher import Topology
from travelagent.topology.scenario import load_scenario, parse_scenario

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


async def test_loopback_topology_is_healthy_through_its_links_and_answers(
    tmp_path: Path, tf: float
) -> None:
    async with Topology("loopback", run_dir=tmp_path / "run", start_timeout_s=30 * tf) as topo:
        async with httpx.AsyncClient(timeout=5 * tf) as http:
            worker = await http.get(topo.urls["worker"] + "/healthz")
            assert worker.status_code == 200
            realtime = await http.get(f"http://127.0.0.1:{topo.ports['client_realtime']}/healthz")
            assert realtime.status_code == 200
        async with AsyncGatewayClient(topo.urls["gateway"], "e2e-user", timeout_s=20 * tf) as c:
            record = await c.request("Hello! Any tips for Lisbon?")
        assert record.status == "ok", record.error
        stats = topo.links()
        assert stats["client_worker"]["stats"]["connections"] >= 2
        assert stats["client_worker"]["stats"]["down"]["bytes"] > 0
        pids = list(topo.pids.values())
    assert all(gone(pid) for pid in pids)


async def test_realtime_path_crosses_the_webhook_and_publish_links(
    tmp_path: Path, tf: float
) -> None:
    data = load_scenario("ci").to_dict()
    data = {k: data[k] for k in ("name", "seed", "llm", "links")}
    data["worker"] = {"publish": "http-new", "stream": False}
    scenario = parse_scenario(data)
    async with Topology(scenario, run_dir=tmp_path / "run", start_timeout_s=30 * tf) as topo:
        client = AsyncRealtimeClient(
            topo.urls["realtime"],
            "e2e-rt-user",
            jwt_secret=topo.secrets[JWT_SECRET_ENV],
            timeout_s=20 * tf,
        )
        await client.connect()
        try:
            records = [await client.request(f"Hotels in Porto? ({i})") for i in range(2)]
        finally:
            await client.close()
        assert [r.status for r in records] == ["ok", "ok"], [r.error for r in records]
        stats = {name: link["stats"] for name, link in topo.links().items()}
        assert stats["client_realtime"]["up"]["bytes"] > 0
        assert stats["realtime_worker"]["up"]["bytes"] > 0  # the webhooks
        # http-new: a fresh connection through worker_realtime for every publish
        assert stats["worker_realtime"]["connections"] >= 2
        assert "worker_agents" not in stats  # agents run inside the worker here


async def test_remote_agent_host_is_reached_through_the_worker_agents_link(
    tmp_path: Path, tf: float
) -> None:
    data = load_scenario("ci").to_dict()
    data = {k: data[k] for k in ("name", "seed", "llm", "links")}
    data["worker"] = {"agents": "remote"}
    async with Topology(
        parse_scenario(data), run_dir=tmp_path / "run", start_timeout_s=30 * tf
    ) as topo:
        assert set(topo.pids) == {"links", "realtime", "agents", "worker"}
        async with AsyncGatewayClient(topo.urls["gateway"], "e2e-remote", timeout_s=20 * tf) as c:
            record = await c.request("Flights to Madrid?")
        assert record.status == "ok", record.error
        assert topo.links()["worker_agents"]["stats"]["up"]["bytes"] > 0


def start_up(tmp_path: Path, tf: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run ``travelagent up ci`` until it prints "ready"; return it and its printed table."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "travelagent", "up", "ci", "--run-dir", str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60 * tf
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("ready"):
            break
    if not (lines and lines[-1].startswith("ready")):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("".join(lines) + err)
    table = dict(line.split(None, 1) for line in lines if line.startswith("  "))
    return proc, {k: v.strip() for k, v in table.items()}


def test_travelagent_up_prints_urls_and_stops_everything_on_sigterm(
    tmp_path: Path, tf: float
) -> None:
    proc, table = start_up(tmp_path, tf)
    try:
        assert table["gateway"].startswith("ws://127.0.0.1:")
        pids = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in table["processes"].split()}
        assert set(pids) == {"links", "realtime", "worker"}
        assert httpx.get(table["worker"] + "/healthz", timeout=5 * tf).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30 * tf)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert all(gone(pid) for pid in pids.values())


def test_travelagent_up_reports_a_crashed_child_and_stops_the_rest(
    tmp_path: Path, tf: float
) -> None:
    proc, table = start_up(tmp_path, tf)
    try:
        pids = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in table["processes"].split()}
        os.kill(pids["worker"], signal.SIGKILL)
        _, err = proc.communicate(timeout=30 * tf)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "worker failed while running (exit code -9)" in err
    assert all(gone(pid) for pid in pids.values())


def test_travelagent_up_with_an_unknown_scenario_explains_and_exits_2(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "travelagent", "up", "no-such-scenario"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2
    assert "no such scenario file" in res.stderr and "loopback" in res.stderr


def test_travelagent_up_interrupted_while_starting_leaves_nothing_behind(
    tmp_path: Path, tf: float
) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "travelagent", "up", "ci", "--run-dir", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30 * tf
    # Wait until the children exist (their logs appear), then interrupt before "ready".
    while not (run / "logs" / "worker.err.log").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30 * tf)
    if "ready" in out:
        pytest.skip("the topology was up before the signal arrived")
    assert proc.returncode == 130, err
    assert "interrupted while starting" in err
    # No process started for this run dir is left (children name it in their command lines).
    left = processes_mentioning(str(run))
    assert left == [], [
        (Path(f"/proc/{p}/cmdline").read_bytes(), Path(f"/proc/{p}/stat").read_text()) for p in left
    ]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found
