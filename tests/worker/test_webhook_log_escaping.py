"""Client-supplied ids reach log lines escaped: no forged lines, no terminal escapes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from test_worker_webhook import RecordingPublisher

from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm import make_llm
from travelagent.config import WEBHOOK_SECRET_ENV, secret
from travelagent.logsafe import esc
from travelagent.wire.webhooks import encode_event, signed_headers, webhook_event
from travelagent.worker.app import create_app
from travelagent.worker.config import WorkerConfig

# A newline followed by what looks like another process's log line, an ANSI "clear screen"
# and "red", a right-to-left override and a lone backslash-n that must not read as a newline.
EVIL_ID = "m1\n2026-12-03 00:00:00 worker all replies published\x1b[2J\x1b[31m\u202eX\\n"


def test_esc_writes_every_control_character_as_an_escape_and_cuts_long_values() -> None:
    out = esc(EVIL_ID)
    assert "\n" not in out and "\x1b" not in out and "\u202e" not in out
    assert out == (
        "m1\\n2026-12-03 00:00:00 worker all replies published\\x1b[2J\\x1b[31m\\u202eX\\\\n"
    )
    assert esc("Zürich, 東京") == "Zürich, 東京"  # printable text is left alone
    assert esc("x" * 250) == "x" * 200 + "…(+50 chars)"
    assert esc(ValueError("a\rb")) == "a\\rb"


async def test_a_message_id_with_a_newline_and_ansi_escapes_is_logged_escaped(
    port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture, tf: float
) -> None:
    # ack-first with a publish that fails once: the worker logs the retry with the message id.
    pub = RecordingPublisher(fail_first=1)
    cfg = WorkerConfig(port=port, db_path=tmp_path / "w.db", webhook_mode="ack-first", stream=False)
    directory = LocalAgentDirectory(cfg.db_path, llm=make_llm("simulated", profile="instant"))
    runner = web.AppRunner(create_app(cfg, directory=directory, publisher=pub))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    event = webhook_event(
        "message", room="travel:u1", user_id="u1", text="hotels in Paris", msg_id=EVIL_ID
    )
    body = encode_event(event)
    try:
        with caplog.at_level(logging.WARNING, logger="travelagent"):
            async with httpx.AsyncClient() as c:
                r = await c.post(
                    f"http://127.0.0.1:{port}/api/realtime/webhook",
                    content=body,
                    headers=signed_headers(secret(WEBHOOK_SECRET_ENV), body),
                )
            assert r.status_code == 200, r.text
            for _ in range(int(200 * tf)):
                if pub.finals():
                    break
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    assert pub.finals()[0]["id"] == EVIL_ID  # the id itself travels unchanged
    [line] = [m for m in caplog.messages if "publish attempt" in m]
    assert esc(EVIL_ID) in line
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    # The whole log as a handler writes it: one record, one line, no escape sequences.
    assert caplog.text.count("publish attempt") == 1
    assert "\x1b" not in caplog.text and "all replies published\n" not in caplog.text
