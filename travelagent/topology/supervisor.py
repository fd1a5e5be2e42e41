"""Child processes of a topology: start, wait for health, watch, stop with nothing left behind.

Each child runs in its own session (so its own process group): Ctrl-C in the terminal reaches
only the launcher, which then stops the children in order, and stopping a child's group also
stops anything that child started. Stop is SIGTERM to the group, a grace period, then SIGKILL.
A child that exits while it should be running is a crash: it is reported with its exit code and
the last lines of its stderr log, never ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class CrashReport:
    name: str
    exit_code: int | None
    stderr_tail: str
    when: str  # "starting" or "running"

    def __str__(self) -> str:
        code = "still running" if self.exit_code is None else f"exit code {self.exit_code}"
        tail = self.stderr_tail.strip() or "(stderr empty)"
        indented = "\n".join("    " + line for line in tail.splitlines())
        return f"{self.name} failed while {self.when} ({code}); last stderr lines:\n{indented}"


class StartInterrupted(Exception):
    """Starting was interrupted on request (a signal); what had started has been stopped."""


class ChildFailed(RuntimeError):
    """One or more children crashed or never became healthy."""

    def __init__(self, reports: Sequence[CrashReport]) -> None:
        self.reports = list(reports)
        super().__init__("\n".join(str(r) for r in reports))


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Child:
    """One supervised process with its logs under ``log_dir``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        health_url: str | None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.health_url = health_url
        self.cwd = cwd
        self.stdout_path = log_dir / f"{name}.out.log"
        self.stderr_path = log_dir / f"{name}.err.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own process group: stopped as a group
            )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def report(self, when: str) -> CrashReport:
        return CrashReport(self.name, self.exit_code(), tail(self.stderr_path), when)

    def healthy(self, client: httpx.Client) -> bool:
        if self.health_url is None:
            return True
        try:
            return client.get(self.health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # pgid == pid: the child leads its own session

    def stop(self, grace_s: float) -> None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL the group; reap the child."""
        if self.proc is None:
            return
        self.stopping = True
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        # Even if the leader exited, members it left behind in the group get the KILL.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)


def wait_all_healthy(
    children: Sequence[Child], *, timeout_s: float, abort: threading.Event | None = None
) -> None:
    """Wait until every child answers its health URL; raise ChildFailed at the first crash,
    StartInterrupted as soon as ``abort`` is set."""
    deadline = time.monotonic() + timeout_s
    pending = [c for c in children if c.health_url]
    with httpx.Client() as client:
        while True:
            if abort is not None and abort.is_set():
                raise StartInterrupted("interrupted while waiting for the children to be healthy")
            crashed = [c.report("starting") for c in children if c.exit_code() is not None]
            if crashed:
                raise ChildFailed(crashed)
            pending = [c for c in pending if not c.healthy(client)]
            if not pending:
                return
            if time.monotonic() > deadline:
                when = f"starting: no healthy answer within {timeout_s:g} s"
                raise ChildFailed(
                    [CrashReport(c.name, c.exit_code(), tail(c.stderr_path), when) for c in pending]
                )
            time.sleep(0.05)
