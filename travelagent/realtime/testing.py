"""Run the realtime service inside the current event loop (tests, notebooks, embedding).

Usage::

    async with running_realtime(config) as rt:
        url = rt.ws_url  # ws://127.0.0.1:<port>/connection/websocket
        ...
        await rt.restart()  # same port, a fresh service (history per config)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.server import create_app
from travelagent.realtime.service import SERVICE, RealtimeService


class RunningRealtime:
    def __init__(self, config: RealtimeConfig) -> None:
        self.config = config
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.config.port}/connection/websocket"

    @property
    def publisher_url(self) -> str:
        return f"ws://{self.config.host}:{self.config.port}/api/ws"

    @property
    def service(self) -> RealtimeService:
        assert self._runner is not None
        return self._runner.app[SERVICE]

    async def start(self) -> None:
        self._runner = web.AppRunner(
            create_app(self.config),
            shutdown_timeout=1.0,
            keepalive_timeout=self.config.keepalive_timeout_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@asynccontextmanager
async def running_realtime(config: RealtimeConfig) -> AsyncIterator[RunningRealtime]:
    rt = RunningRealtime(config)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()
