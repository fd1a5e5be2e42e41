"""The optional peer: the same gateway on Cloudflare's runtime, run locally by ``wrangler dev``.

``wrangler/`` holds a Worker and a Durable Object of ours that do what our gateway does: route
the socket by ``userId`` to one object, one durable SQL write per message, reply (the runtime's
output gate holds the reply until the write is durable). The reply is a gateway response frame
with the message's ``id`` and ``trace``, so the same client drives it. Where Node.js and npm are
present, wrangler is installed into ``wrangler/node_modules`` on first use; otherwise, or if that
or the start fails, the peer is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from travelagent.topology.launcher import _free_ports

PEER_DIR = Path(__file__).resolve().parent / "wrangler"
WRANGLER = PEER_DIR / "node_modules" / ".bin" / "wrangler"


class PeerUnavailable(RuntimeError):
    """The peer cannot run here; the message says why (printed as ``skipped: ...``)."""


def ensure_wrangler(*, timeout_s: float = 300.0) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("Node.js or npm not found")
    if not WRANGLER.exists():
        res = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=PEER_DIR, capture_output=True,
            text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if res.returncode != 0 or not WRANGLER.exists():
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PeerUnavailable(f"npm install of wrangler failed: {tail[0]}")
    return WRANGLER


class WranglerPeer:
    """``with WranglerPeer(state_dir) as peer: peer.url`` runs ``wrangler dev`` for the block."""

    def __init__(self, state_dir: Path, *, start_timeout_s: float = 90.0) -> None:
        self.state_dir = state_dir
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> WranglerPeer:
        wrangler = ensure_wrangler()
        port = _free_ports(1)[0]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "1", "NO_COLOR": "1"}
        argv = [str(wrangler), "dev", "--ip", "127.0.0.1", "--port", str(port),
                "--persist-to", str(self.state_dir), "--log-level", "warn"]  # fmt: skip
        with open(self.state_dir / "wrangler.log", "wb") as log:  # the child keeps its own fd
            self.proc = subprocess.Popen(
                argv, cwd=PEER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,  # wrangler starts workerd too
            )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise PeerUnavailable(f"wrangler dev exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                    self.url = f"ws://127.0.0.1:{port}/api/gateway/ws"
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise PeerUnavailable(f"wrangler dev not healthy after {self.start_timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
