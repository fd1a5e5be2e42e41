"""The gevent-friendly gateway client across a worker killed with SIGKILL mid-reply and
restarted: it reconnects, resumes and resends, and the turn's key makes the new worker finish
the turn once (a file of its own: two worker processes start)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from conftest import free_port

from travelagent.client.sync_gateway import GatewayClient, Pending
from travelagent.runner.procs import ServedProcess


def pump_until_streaming(client: GatewayClient, p: Pending, tf: float) -> None:
    for _ in range(int(1000 * tf)):
        if p.record.streaming:
            return
        client.pump(0.01)
    raise AssertionError("the reply never started")


def test_sync_client_keeps_its_message_across_a_worker_killed_and_restarted(
    tmp_path: Path, tf: float
) -> None:
    """SIGKILL mid-reply: the client reconnects to the restarted worker, resumes and resends;
    the turn's key makes the new worker finish it once."""
    port, db = free_port(), tmp_path / "a.db"
    argv = [sys.executable, "-m", "travelagent", "serve", "worker", "--port", str(port),
            "--db", str(db), "--profile", "gpt-4o-mini-like", "--stream"]  # fmt: skip
    health = f"http://127.0.0.1:{port}/healthz"
    client = GatewayClient(f"http://127.0.0.1:{port}", "u1", stream=True, timeout_s=30 * tf)
    with ServedProcess(argv, health, timeout_s=30 * tf) as worker:
        first = client.request("hotels in Paris")
        p = client.send("hotels in Rome")
        pump_until_streaming(client, p, tf)  # the user's message is committed
        assert worker.proc is not None
        worker.proc.kill()
        worker.proc.wait()
    with ServedProcess(argv, health, timeout_s=30 * tf):
        rec = client.wait(p)
        client.close()
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").fetchone()
    finally:
        conn.close()
    assert first.status == "ok" and rec.status == "ok", rec.error
    assert "Rome" in rec.reply
    assert client.reconnects == 1 and rows[0] == 2
