"""Typed keys for what the worker keeps on its aiohttp application."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from travelagent.agent.base import AgentDirectory
    from travelagent.limits import ConnectionLimiter
    from travelagent.worker.config import WorkerConfig
    from travelagent.worker.hybrid import RoomAnnouncer
    from travelagent.worker.intake import WebhookIntake
    from travelagent.worker.journal import TurnJournal
    from travelagent.worker.publish import Publisher
    from travelagent.worker.turn import RealtimeTurn

CONFIG: web.AppKey[WorkerConfig] = web.AppKey("config")
DIRECTORY: web.AppKey[AgentDirectory] = web.AppKey("directory")
STATS: web.AppKey[Counter[str]] = web.AppKey("stats")
PUBLISHER: web.AppKey[Publisher] = web.AppKey("publisher")
INTAKE: web.AppKey[WebhookIntake[RealtimeTurn]] = web.AppKey("intake")
ROOMS: web.AppKey[RoomAnnouncer] = web.AppKey("rooms")
JOURNAL: web.AppKey[TurnJournal] = web.AppKey("journal")
PER_ADDRESS: web.AppKey[ConnectionLimiter] = web.AppKey("per_address")
PER_USER: web.AppKey[ConnectionLimiter] = web.AppKey("per_user")
# The gateway socket's per-user slot, held for the request's life (limits.hold_user).
USER_SLOT: web.RequestKey[tuple[ConnectionLimiter, str]] = web.RequestKey("user_slot", tuple)
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("background")
