"""``travelagent serve realtime`` as a process: starts, answers /healthz, refuses bad flags."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest


def test_bad_webhook_url_is_refused_with_a_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "travelagent", "serve", "realtime", "--webhook-url", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "webhook URL must be http(s)" in proc.stderr


async def test_service_process_starts_and_serves_healthz(port: int, tf: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "travelagent", "serve", "realtime", "--port", str(port),
        "--webhook-url", "", "--log-level", "warning",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        r: httpx.Response | None = None
        async with httpx.AsyncClient() as http:
            for _ in range(int(200 * tf)):
                try:
                    r = await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert r is not None, "the service never answered /healthz"
            assert r.status_code == 200 and r.json()["ok"] is True
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10 * tf) is not None


@pytest.mark.parametrize("schedule", ["-1", "5,soon"])
def test_a_bad_retry_schedule_is_refused_with_exit_2(
    schedule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from travelagent.realtime.cli import add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args(["--webhook-retry-schedule-s", schedule])) == 2
    assert "--webhook-retry-schedule-s" in capsys.readouterr().err
