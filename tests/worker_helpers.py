"""Start a real worker on a free port for tests, and talk to it with plain ``websockets``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets
from aiohttp import web

from travelagent.agent.llm import make_llm
from travelagent.wire.trace import Trace
from travelagent.worker.app import create_app
from travelagent.worker.config import WorkerConfig

JWT_SECRET = "test-jwt-secret-that-is-long-enough-32"


@contextlib.asynccontextmanager
async def running_worker(
    port: int, db_path: Path, *, profile: str = "instant", llm: Any = None, **config: Any
) -> AsyncIterator[web.Application]:
    config.setdefault("jwt_secret", JWT_SECRET)
    cfg = WorkerConfig(port=port, db_path=db_path, **config)
    app = create_app(cfg, llm=llm or make_llm("simulated", profile=profile, seed=1))
    runner = web.AppRunner(app, keepalive_timeout=cfg.keepalive_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield app
    finally:
        await runner.cleanup()


async def recv_reply(ws: Any, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Frames of one reply: up to and including the final (response/complete/error) frame."""
    import asyncio

    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        frames.append(frame)
        if frame.get("streaming") or frame.get("chunk"):
            continue
        return frames


def connect(port: int, query: str = "userId=u1", **kw: Any) -> Any:
    return websockets.connect(f"ws://127.0.0.1:{port}/api/gateway/ws?{query}", **kw)


class GatedLLM:
    """Answers in two chunks; the second waits until ``gate`` is set (when ``hold`` is on), so a
    test can cut the socket in the middle of a reply. Counts the turns it is asked for."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.hold = False
        self.runs = 0
        self.first_sent = asyncio.Event()

    async def _stream(
        self, messages: list[dict[str, str]], trace: Trace | None
    ) -> AsyncIterator[str]:
        self.runs += 1
        n = self.runs
        yield f"Reply {n} begins. "
        self.first_sent.set()
        if self.hold:
            await self.gate.wait()
        yield f"Reply {n} ends."

    def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        return self._stream(messages, trace)

    async def aclose(self) -> None:
        pass
