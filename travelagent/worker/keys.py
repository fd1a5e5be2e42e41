"""Typed keys for what the worker keeps on its aiohttp application."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web

from travelagent.agent.base import AgentDirectory
from travelagent.worker.config import WorkerConfig

if TYPE_CHECKING:
    pass

CONFIG = web.AppKey("config", WorkerConfig)
DIRECTORY = web.AppKey("directory", AgentDirectory)
STATS = web.AppKey("stats", Counter)
PUBLISHER = web.AppKey("publisher", "Publisher")
DEDUP = web.AppKey("dedup", "WebhookDeduplicator")
ROOMS = web.AppKey("rooms", "RoomAnnouncer")
BACKGROUND = web.AppKey("background", set)
