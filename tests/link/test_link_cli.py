from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
from conftest import free_port


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
    writer.close()


async def test_serve_link_forwards_with_delay_and_stops_on_sigterm(tf: float) -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    listen, control = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "travelagent", "serve", "link",
        "--listen", f"127.0.0.1:{listen}", "--upstream", f"127.0.0.1:{up_port}",
        "--delay-ms", "10", "--setup-rtts", "0", "--control", f"127.0.0.1:{control}",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 20 * tf
            while True:
                try:
                    health = await http.get(f"http://127.0.0.1:{control}/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "link never became healthy"
                    await asyncio.sleep(0.05)
            assert health.json()["links"] == ["link"]
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        t0 = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5 * tf) == b"ping"
        assert time.monotonic() - t0 >= 0.020 - 0.002
        writer.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10 * tf) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
        await server.wait_closed()


def test_serve_link_with_bad_arguments_explains_and_exits_2() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "travelagent", "serve", "link", "--listen", "nowhere",
         "--upstream", "127.0.0.1:1", "--delay-ms", "5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2
    assert "address must be HOST:PORT" in res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "travelagent", "serve", "link", "--listen", "127.0.0.1:0",
         "--upstream", "127.0.0.1:1", "--delay-ms", "-5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 2
    assert "delay_ms must not be negative" in res.stderr
