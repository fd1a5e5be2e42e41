"""The pure parts of the memory section's tracing mode (``bench.memory trace``)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

from travelagent.bench.memory import package_of, per_connection_report, traced_command


def test_files_are_grouped_by_package() -> None:
    site = "/v/lib/python3.11/site-packages"
    assert package_of(f"{site}/aiohttp/web_ws.py") == "aiohttp"
    assert package_of(f"{site}/_cffi_backend.cpython-311.so") == "_cffi_backend"
    assert package_of("/w/travelagent/realtime/session.py") == "travelagent"
    assert package_of("/py/lib/python3.11/asyncio/base_events.py") == "asyncio"
    assert package_of("/py/lib/python3.11/socket.py") == "asyncio"
    assert package_of("/py/lib/python3.11/json/decoder.py") == "decoder.py"


def test_a_traced_server_runs_the_same_arguments_through_serve_traced() -> None:
    def build(ctx: Any) -> list[str]:
        return ["/py", "-m", "travelagent", "serve", "worker", "--port", "1"]

    command = traced_command(build)(None)  # type: ignore[arg-type]
    assert command == ["/py", "-m", "travelagent.bench.memory", "serve-traced", "serve",
                       "worker", "--port", "1"]  # fmt: skip


def test_the_report_divides_the_difference_by_the_connections(tmp_path: Path) -> None:
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        held = [bytearray(1000) for _ in range(10)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    report = per_connection_report(before, after, ({"a.B": 1}, {"a.B": 21}), n=10)
    per_conn = int(report.splitlines()[0].split(": ")[1].split(" ")[0].replace(",", ""))
    assert 1000 <= per_conn < 1300 and len(held) == 10
    assert "2.00    a.B" in report
    assert "test_bench_memory_trace.py" in report.split("-- by line")[0]
