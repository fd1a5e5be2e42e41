from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import JWT_SECRET, running_worker

from travelagent.commands.chat import add_arguments, chat


def _args(*argv: str) -> Any:
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


async def test_chat_streams_the_reply_and_reports_its_latency(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hotels in Paris\nshow my itinerary\n\n"))
    monkeypatch.setenv("TRAVELAGENT_JWT_SECRET", JWT_SECRET)  # chat signs its token with it
    async with running_worker(port, tmp_path / "a.db"):
        rc = await chat(_args("--url", f"ws://127.0.0.1:{port}", "--user", "c1"))
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("agent> ") == 2 and "Paris" in out
    assert out.count("ms end to end") == 2


async def test_chat_without_a_worker_says_it_cannot_connect(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from travelagent.commands.chat import main

    rc = await asyncio.to_thread(main, _args("--url", f"ws://127.0.0.1:{port}"))
    assert rc == 1 and "cannot connect" in capsys.readouterr().err
