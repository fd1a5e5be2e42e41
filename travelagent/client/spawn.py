"""Start a local worker in a subprocess for a quick measurement, and always stop it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before it was healthy")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not healthy within {timeout_s} s")


@contextlib.contextmanager
def spawned_worker(
    *, profile: str = "instant", stream: bool | None = None, extra: list[str] | None = None
) -> Iterator[str]:
    """Yield the ws:// base URL of a fresh worker with a throw-away database."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="travelagent-") as tmp:
        cmd = [sys.executable, "-m", "travelagent", "serve", "worker", "--port", str(port),
               "--db", str(Path(tmp) / "agents.sqlite3"), "--profile", profile]  # fmt: skip
        if stream is not None:
            cmd.append("--stream" if stream else "--no-stream")
        cmd += extra or []
        log = open(Path(tmp) / "worker.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            yield f"ws://127.0.0.1:{port}"
        except RuntimeError:
            log.flush()
            sys.stderr.write((Path(tmp) / "worker.log").read_text()[-2000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
