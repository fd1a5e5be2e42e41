"""``Topology``: a scenario as running processes, for the CLI, tests, Locust and notebooks.

    with Topology("loopback", run_dir=Path("data/runs/x")) as topo:
        topo.urls["gateway"]      # ws://127.0.0.1:PORT/api/gateway/ws, through client_worker
        topo.secrets              # the fresh secrets the children were given
        topo.set_fault("worker_realtime", "reset")

``async with Topology(...)`` does the same without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets as secrets_mod
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from travelagent.config import (
    AGENT_HOST_TOKEN_ENV,
    API_KEY_ENV,
    JWT_SECRET_ENV,
    LINK_CONTROL_TOKEN_ENV,
    WEBHOOK_SECRET_ENV,
)
from travelagent.http_auth import bearer_headers
from travelagent.topology.plan import HOST, CommandBuilder, Plan, build_plan, needed_ports
from travelagent.topology.scenario import Scenario, load_scenario
from travelagent.topology.supervisor import (
    Child,
    ChildFailed,
    CrashReport,
    StartInterrupted,
    wait_all_healthy,
)

ROOT = Path(__file__).resolve().parents[2]


def new_secrets() -> dict[str, str]:
    """Fresh random secrets for one topology (never the development defaults).

    Hex, so that no secret starts with ``-`` and reads as an option when a user passes it
    on a command line (``--jwt-secret VALUE``); url-safe base64 does one time in 64.
    """
    return {
        JWT_SECRET_ENV: secrets_mod.token_hex(32),
        API_KEY_ENV: secrets_mod.token_hex(24),
        WEBHOOK_SECRET_ENV: "whsec_" + base64.b64encode(secrets_mod.token_bytes(32)).decode(),
        AGENT_HOST_TOKEN_ENV: secrets_mod.token_hex(32),
        LINK_CONTROL_TOKEN_ENV: secrets_mod.token_hex(32),
    }


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all bound at once, so no duplicates)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Topology:
    """Start every process of a scenario, wait for health, supervise, stop cleanly."""

    def __init__(
        self,
        scenario: Scenario | str | Path,
        *,
        run_dir: str | Path | None = None,
        commands: Mapping[str, CommandBuilder] | None = None,
        start_timeout_s: float = 30.0,
        grace_s: float = 5.0,
        start_faults: bool = True,
        env: Mapping[str, str] | None = None,
        on_crash: Callable[[CrashReport], None] | None = None,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        # Absolute: children run with the run dir as their working directory.
        self.run_dir = (
            Path(run_dir).resolve() if run_dir else Path(tempfile.mkdtemp(prefix="travelagent-"))
        )
        self.log_dir = self.run_dir / "logs"
        self.commands = dict(commands or {})
        self.start_timeout_s = start_timeout_s
        self.grace_s = grace_s
        self.start_faults = start_faults
        self.extra_env = dict(env or {})
        self.on_crash = on_crash
        self.secrets = new_secrets()
        self.children: list[Child] = []
        self.plan: Plan | None = None
        self.crashes: list[CrashReport] = []
        # Set (e.g. from a signal handler) to stop start() at its next safe point; a signal
        # raising KeyboardInterrupt inside Popen could leave a child nobody knows about.
        self.abort = threading.Event()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._started = False
        self._restarted: set[str] = set()

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        assert self.plan is not None, "topology not started"
        return self.plan.urls

    @property
    def ports(self) -> dict[str, int]:
        assert self.plan is not None, "topology not started"
        return self.plan.ports

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children if c.pid is not None}

    def client_env(self) -> dict[str, str]:
        """Environment a client of this topology needs (the secrets)."""
        return dict(self.secrets)

    def start(self) -> Topology:
        if self._started:
            return self
        self._started = True
        self.log_dir.mkdir(parents=True, exist_ok=True)
        wanted = needed_ports(self.scenario)
        fixed = {k: v for k, v in self.scenario.ports.items() if v and k in wanted}
        free = iter(_free_ports(len(wanted)))
        ports = {k: fixed.get(k) or next(free) for k in wanted}
        links_path = self.run_dir / "links.json"
        self.plan = build_plan(self.scenario, ports, self.run_dir, links_path, self.commands)
        links_path.write_text(json.dumps(self.plan.links_config, indent=2), encoding="utf-8")
        (self.run_dir / "scenario.json").write_text(
            json.dumps(self.scenario.to_dict(), indent=2), encoding="utf-8"
        )
        env = {**os.environ, **self.extra_env, **self.secrets, "PYTHONUNBUFFERED": "1"}
        # Children import this package from the tree the launcher runs from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        try:
            for spec in self.plan.processes:
                if self.abort.is_set():
                    raise StartInterrupted("interrupted while starting the children")
                child = Child(
                    spec.name, spec.argv, env=env, log_dir=self.log_dir,
                    health_url=spec.health_url, cwd=self.run_dir,
                )  # fmt: skip
                self.children.append(child)
                child.start()
            wait_all_healthy(self.children, timeout_s=self.start_timeout_s, abort=self.abort)
            if self.start_faults and self.plan.links_config["faults"]:
                self.start_fault_schedule()
        except BaseException:
            self.stop()
            raise
        # What is running where, for notebooks and people (no secrets: see secrets.env).
        (self.run_dir / "topology.json").write_text(
            json.dumps({"urls": self.urls, "ports": self.ports, "pids": self.pids}, indent=2),
            encoding="utf-8",
        )
        self._watcher = threading.Thread(target=self._watch, name="topology-watch", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        reported: set[str] = set()
        while not self._watch_stop.wait(0.2):
            for child in self.children:
                if child.name in self._restarted:  # a new process: watch it afresh
                    self._restarted.discard(child.name)
                    reported.discard(child.name)
                if child.stopping or child.name in reported or child.exit_code() is None:
                    continue
                reported.add(child.name)
                report = child.report("running")
                self.crashes.append(report)
                if self.on_crash is not None:
                    self.on_crash(report)

    def check(self) -> None:
        """Raise ChildFailed if any child has crashed since start."""
        if self.crashes:
            raise ChildFailed(self.crashes)

    def stop(self) -> None:
        """Stop every child (reverse start order), waiting for each; safe to call twice."""
        self._watch_stop.set()
        for child in self.children:
            child.stopping = True
        for child in reversed(self.children):
            child.stop(self.grace_s)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=1.0)

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Topology:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- faults on processes (chaos) ------------------------------------------------------------

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no process {name!r} in this topology; running: {sorted(self.pids)}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one process (its whole group) on purpose: not reported as a crash. ``restart``
        brings it back on the same port."""
        child = self.child(name)
        child.stopping = True
        child.signal_group(sig)
        if child.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=self.grace_s)
        child.signal_group(signal.SIGKILL)  # members it left behind
        if child.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=self.grace_s)

    def restart(self, name: str, *, sig: int | None = None, timeout_s: float | None = None) -> None:
        """Start one process again with the same command line (same port, same files) and wait
        until it is healthy; with ``sig``, first stop it with that signal (SIGTERM: a clean
        restart). Raises ChildFailed if it does not come back."""
        child = self.child(name)
        if sig is not None or child.exit_code() is None:
            self.kill(name, sig if sig is not None else signal.SIGTERM)
        child.start()
        wait_all_healthy([child], timeout_s=timeout_s or self.start_timeout_s, abort=self.abort)
        child.stopping = False
        # A crash reported for the old process is history; the watcher reports the new one.
        self._restarted.add(name)

    # -- link control -------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(
            method,
            self.urls["control"] + path,
            json=body,
            timeout=5.0,
            headers=bearer_headers(self.secrets[LINK_CONTROL_TOKEN_ENV]),
        )
        if resp.status_code >= 400:
            raise ValueError(f"link control {method} {path}: {resp.status_code} {resp.text}")
        return resp.json()

    def links(self) -> dict[str, Any]:
        """Every link's shape, faults and counters."""
        return dict(self._control("GET", "/links"))

    def set_fault(self, link: str, fault: str, on: bool = True, **extra: Any) -> dict[str, Any]:
        return dict(
            self._control("POST", f"/links/{link}/faults", {"fault": fault, "on": on, **extra})
        )

    def set_shape(self, link: str, **shape: Any) -> dict[str, Any]:
        return dict(self._control("POST", f"/links/{link}/shape", shape))

    def start_fault_schedule(self, faults: list[dict[str, Any]] | None = None) -> int:
        """Start the scenario's fault schedule now (t = 0), or ``faults`` instead."""
        body = None if faults is None else {"faults": faults}
        return int(self._control("POST", "/schedule/start", body)["events"])
