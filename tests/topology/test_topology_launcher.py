from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from travelagent.config import JWT_SECRET_ENV, WEBHOOK_SECRET_ENV
from travelagent.topology.launcher import Topology
from travelagent.topology.plan import ComponentContext
from travelagent.topology.supervisor import ChildFailed, CrashReport

STAND_IN = """
import argparse, asyncio, os, signal, subprocess, sys
from aiohttp import web

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--name", required=True)
p.add_argument("--fail-start", action="store_true")
p.add_argument("--spawn", action="store_true")
p.add_argument("--ignore-term", action="store_true")
args = p.parse_args()
if args.fail_start:
    print("cannot start: the stand-in was told to fail", file=sys.stderr, flush=True)
    sys.exit(3)
if args.ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"]) if args.spawn else None

async def healthz(request):
    return web.json_response({
        "name": args.name, "pid": os.getpid(), "grandchild": child.pid if child else None,
        "jwt": os.environ.get("TRAVELAGENT_JWT_SECRET"), "argv": sys.argv,
    })

async def crash(request):
    # on request, so the crash happens once the whole topology is up, however slow the machine
    print("boom: the stand-in crashed on purpose", file=sys.stderr, flush=True)
    os._exit(7)

async def main():
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/crash", crash)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "stand_in.py"
    path.write_text(STAND_IN, encoding="utf-8")
    return path


def commands(
    stand_in: Path, **extra: list[str]
) -> dict[str, Callable[[ComponentContext], list[str]]]:
    def builder(name: str) -> Callable[[ComponentContext], list[str]]:
        def build(ctx: ComponentContext) -> list[str]:
            argv = [sys.executable, str(stand_in), "--port", str(ctx.port), "--name", name]
            return argv + extra.get(name, [])

        return build

    return {name: builder(name) for name in ("worker", "realtime", "agents")}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its (re)parent to reap it is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def test_topology_starts_stand_ins_behind_links_and_stops_them_all(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    topo = Topology(
        "ci",
        run_dir=tmp_path / "run",
        commands=commands(stand_in, worker=["--spawn"]),
        start_timeout_s=20 * tf,
    )
    with topo:
        assert set(topo.pids) == {"links", "realtime", "worker"}
        via_link = httpx.get(topo.urls["worker"] + "/healthz", timeout=5 * tf).json()
        assert via_link["name"] == "worker"
        rt_port = topo.ports["client_realtime"]
        assert httpx.get(f"http://127.0.0.1:{rt_port}/healthz", timeout=5 * tf).json()["name"] == (
            "realtime"
        )
        # Fresh secrets went to the children through the environment.
        assert via_link["jwt"] == topo.secrets[JWT_SECRET_ENV]
        assert topo.secrets[WEBHOOK_SECRET_ENV].startswith("whsec_")
        assert topo.links()["client_worker"]["stats"]["connections"] >= 1
        pids = [*topo.pids.values(), via_link["grandchild"]]
        assert (tmp_path / "run" / "logs" / "worker.err.log").exists()
        written = json.loads((tmp_path / "run" / "topology.json").read_text())
        assert written["urls"] == topo.urls and written["pids"] == topo.pids
        assert topo.secrets[JWT_SECRET_ENV] not in json.dumps(written)
    assert all(gone(pid) for pid in pids), "a process of the topology outlived stop()"


def test_each_topology_gets_its_own_secrets(stand_in: Path, tmp_path: Path) -> None:
    a = Topology("ci", run_dir=tmp_path / "a", commands=commands(stand_in))
    b = Topology("ci", run_dir=tmp_path / "b", commands=commands(stand_in))
    assert a.secrets != b.secrets


def test_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    topo = Topology(
        "ci",
        run_dir=tmp_path / "run",
        commands=commands(stand_in, worker=["--ignore-term"]),
        grace_s=0.5,
        start_timeout_s=20 * tf,
    )
    with topo:
        pids = list(topo.pids.values())
    assert all(gone(pid) for pid in pids)


def test_child_that_fails_to_start_is_reported_and_the_rest_are_stopped(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    topo = Topology(
        "ci",
        run_dir=tmp_path / "run",
        commands=commands(stand_in, worker=["--fail-start"]),
        start_timeout_s=20 * tf,
    )
    with pytest.raises(ChildFailed) as info:
        topo.start()
    report = info.value.reports[0]
    assert report.name == "worker" and report.exit_code == 3
    assert "the stand-in was told to fail" in report.stderr_tail
    assert "exit code 3" in str(info.value)
    assert topo.pids and all(gone(pid) for pid in topo.pids.values())


def test_child_crashing_while_running_is_reported_with_exit_code_and_stderr(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    crashed = threading.Event()
    reports: list[CrashReport] = []

    def on_crash(report: CrashReport) -> None:
        reports.append(report)
        crashed.set()

    topo = Topology(
        "ci",
        run_dir=tmp_path / "run",
        commands=commands(stand_in),
        on_crash=on_crash,
        start_timeout_s=20 * tf,
    )
    with topo:
        with contextlib.suppress(httpx.HTTPError):  # the process dies before it answers
            httpx.post(f"http://127.0.0.1:{topo.ports['realtime']}/crash", timeout=5 * tf)
        assert crashed.wait(10 * tf), "the crash was never reported"
        with pytest.raises(ChildFailed, match="boom"):
            topo.check()
    assert reports[0].name == "realtime" and reports[0].exit_code == 7
    assert reports[0].when == "running"


def test_pytest_factory_fixture_starts_a_topology(
    topology_factory: Any, stand_in: Path, tf: float
) -> None:
    topo = topology_factory("ci", commands=commands(stand_in), start_timeout_s=20 * tf)
    assert httpx.get(topo.urls["control"] + "/healthz", timeout=5 * tf).json()["status"] == "ok"


async def test_topology_works_from_async_code(stand_in: Path, tmp_path: Path, tf: float) -> None:
    async with Topology(
        "ci", run_dir=tmp_path / "run", commands=commands(stand_in), start_timeout_s=20 * tf
    ) as topo:
        async with httpx.AsyncClient() as http:
            resp = await http.get(topo.urls["worker"] + "/healthz", timeout=5 * tf)
            assert resp.json()["name"] == "worker"
        pids = list(topo.pids.values())
    assert all(gone(pid) for pid in pids)


def test_scheduled_fault_runs_once_the_topology_is_up(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    from travelagent.topology.scenario import load_scenario, parse_scenario

    base = load_scenario("ci").to_dict()
    data = {k: base[k] for k in ("name", "seed", "llm", "worker", "links")}
    data["faults"] = [{"at_s": 0.0, "link": "client_worker", "fault": "refuse"}]
    assert parse_scenario(data).faults
    with Topology(
        parse_scenario(data), run_dir=tmp_path / "run", commands=commands(stand_in),
        start_timeout_s=20 * tf,
    ) as topo:  # fmt: skip
        deadline = 50
        while not topo.links()["client_worker"]["faults"]["refuse"] and deadline:
            deadline -= 1
            threading.Event().wait(0.05 * tf)
        with pytest.raises(httpx.ConnectError):
            httpx.get(topo.urls["worker"] + "/healthz", timeout=5 * tf)
        topo.set_fault("client_worker", "refuse", on=False)
        assert httpx.get(topo.urls["worker"] + "/healthz", timeout=5 * tf).status_code == 200


def test_relative_run_dir_is_made_absolute(
    stand_in: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tf: float
) -> None:
    monkeypatch.chdir(tmp_path)
    with Topology(
        "ci", run_dir="rel/run", commands=commands(stand_in), start_timeout_s=20 * tf
    ) as topo:
        assert topo.run_dir == tmp_path / "rel" / "run"
        assert topo.plan is not None
        worker_argv = next(p.argv for p in topo.plan.processes if p.name == "worker")
        assert all(not a.startswith("rel/") for a in worker_argv)
    assert (tmp_path / "rel" / "run" / "logs" / "links.err.log").exists()


def test_abort_while_waiting_for_health_stops_what_was_started(
    stand_in: Path, tmp_path: Path, tf: float
) -> None:
    from travelagent.topology.supervisor import StartInterrupted

    cmds = commands(stand_in)
    cmds["worker"] = lambda ctx: ["sleep", "30"]  # never healthy
    topo = Topology("ci", run_dir=tmp_path / "run", commands=cmds, start_timeout_s=30 * tf)
    threading.Timer(0.3, topo.abort.set).start()
    t0 = time.monotonic()
    with pytest.raises(StartInterrupted):
        topo.start()
    assert time.monotonic() - t0 < 10 * tf  # did not wait for the start timeout
    assert topo.pids and all(gone(pid) for pid in topo.pids.values())


def test_fresh_secrets_never_read_as_command_line_options() -> None:
    # A secret starting with "-" breaks `--jwt-secret VALUE` (argparse takes it for an
    # option); url-safe base64 starts with "-" one time in 64, which once failed a run.
    from travelagent.topology.launcher import new_secrets

    for _ in range(500):
        for name, value in new_secrets().items():
            assert not value.startswith("-"), name
            assert len(value) >= 32, name
