"""The Worker: one aiohttp application with the note's two entry points.

- ``GET /api/gateway/ws``: ``handle_gateway_websocket`` (the direct path)
- ``POST /api/realtime/webhook``: ``handle_realtime_webhook`` (the realtime path)
- ``GET /healthz``
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from aiohttp import web

from travelagent.agent.base import AgentDirectory, LLMBackend
from travelagent.limits import ConnectionLimiter
from travelagent.monitor import LoopLagMonitor, attach_loop_lag
from travelagent.worker.config import WorkerConfig
from travelagent.worker.gateway import handle_gateway_websocket
from travelagent.worker.hybrid import RoomAnnouncer
from travelagent.worker.intake import MAX_WEBHOOK_BYTES
from travelagent.worker.journal import TurnJournal
from travelagent.worker.keys import (
    BACKGROUND,
    CONFIG,
    DIRECTORY,
    INTAKE,
    JOURNAL,
    PER_ADDRESS,
    PER_USER,
    PUBLISHER,
    ROOMS,
    STATS,
)
from travelagent.worker.publish import Publisher, make_publisher
from travelagent.worker.webhook import handle_realtime_webhook, make_intake, resume_owed_turns
from travelagent.worker.webhook_log import WebhookLog, log_path

log = logging.getLogger(__name__)
_STARTED = web.AppKey("started", float)
_LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)
_WEBHOOK_LOG = web.AppKey("webhook_log", WebhookLog)


def make_directory(config: WorkerConfig, llm: LLMBackend | None) -> AgentDirectory:
    if config.agents_url:
        from travelagent.agent.remote import RemoteAgentDirectory

        return RemoteAgentDirectory(config.agents_url, process=config.process)
    from travelagent.agent.directory import LocalAgentDirectory

    return LocalAgentDirectory(
        config.db_path, llm=llm, process=config.process, max_agents=config.max_live_agents
    )


def create_app(
    config: WorkerConfig,
    *,
    llm: LLMBackend | None = None,
    directory: AgentDirectory | None = None,
    publisher: Publisher | None = None,
) -> web.Application:
    """Build the worker. Agents are local (SQLite at ``config.db_path``, ``llm`` as their model)
    or at ``config.agents_url``; ``directory`` and ``publisher`` replace either (tests)."""
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    app[CONFIG] = config
    app[STATS] = Counter()
    app[BACKGROUND] = set()
    app[_WEBHOOK_LOG] = WebhookLog(log_path(config.db_path), ttl_s=config.webhook_dedup_ttl_s)
    app[INTAKE] = make_intake(config, app[_WEBHOOK_LOG])
    app[JOURNAL] = TurnJournal(config.db_path)
    # "is None", not "or": an empty directory has len() 0 and is falsy.
    app[DIRECTORY] = directory if directory is not None else make_directory(config, llm)
    app[PUBLISHER] = (
        publisher
        if publisher is not None
        else make_publisher(config.publish, config.realtime_url, timeout_s=config.publish_timeout_s)
    )
    app[ROOMS] = RoomAnnouncer(app[PUBLISHER], max_bindings=config.max_room_bindings)
    app[PER_ADDRESS] = ConnectionLimiter(config.max_connections_per_address)
    app[PER_USER] = ConnectionLimiter(config.max_connections_per_user)
    app[_STARTED] = time.monotonic()
    app[_LOOP_LAG] = attach_loop_lag(app)
    if config.gateway_open:
        # Said once, at start: anyone who can reach this address may act as any user.
        log.warning(
            "gateway open: sockets without a token are admitted on %s (%s)",
            config.host,
            "loopback" if config.gateway_access == "auto" else "--insecure-open-gateway",
        )
    app.router.add_get("/api/gateway/ws", handle_gateway_websocket)
    app.router.add_post("/api/realtime/webhook", handle_realtime_webhook)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(resume_owed_turns)
    app.on_shutdown.append(_drain_background)
    app.on_cleanup.append(_close)
    return app


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    cfg = app[CONFIG]
    stats: Counter[str] = app[STATS]
    return web.json_response(
        {
            "status": "ok",
            "component": "worker",
            "uptime_s": round(time.monotonic() - app[_STARTED], 3),
            "publish": cfg.publish,
            "webhook_mode": cfg.webhook_mode,
            "stream": cfg.stream,
            "agents": cfg.agents_url or "local",
            "gateway_open": cfg.gateway_open,
            "room_bindings": app[ROOMS].bindings(),
            "room_bindings_released": app[ROOMS].released,
            "agents_released": getattr(app[DIRECTORY], "released", 0),
            "stats": dict(stats),
            "loop_lag": app[_LOOP_LAG].summary(),
        }
    )


async def _drain_background(app: web.Application) -> None:
    import asyncio

    background: set[asyncio.Task[None]] = app[BACKGROUND]
    pending = list(background)
    if pending:
        await asyncio.wait(pending, timeout=10.0)


async def _close(app: web.Application) -> None:
    await app[PUBLISHER].aclose()
    await app[DIRECTORY].close()
    app[_WEBHOOK_LOG].close()
    app[JOURNAL].close()
