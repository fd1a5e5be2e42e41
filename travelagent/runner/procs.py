"""Child processes that serve HTTP: start one, wait for its ``/healthz``, stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[2]


def wait_healthy(
    url: str, *, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was up")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as err:
            last = str(err)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout_s} s ({last})")


class ServedProcess:
    """``with ServedProcess([...], health_url) as p:`` runs a server for the block."""

    def __init__(
        self,
        argv: Sequence[str],
        health_url: str,
        *,
        timeout_s: float = 20.0,
        log_path: str | Path | None = None,
    ) -> None:
        self.argv = [sys.executable, *argv] if argv[0].endswith(".py") else list(argv)
        self.health_url = health_url
        self.timeout_s = timeout_s
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServedProcess:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_healthy(self.health_url, timeout_s=self.timeout_s, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
