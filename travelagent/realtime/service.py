"""The state of one running realtime service, shared by its endpoints."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from travelagent.limits import ConnectionLimiter
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.history import History
from travelagent.realtime.hub import Hub
from travelagent.realtime.idempotency import (
    DURABLE_MEMORY_KEYS,
    IdempotencyCache,
    SqliteIdempotencyCache,
)
from travelagent.realtime.outbox import Outbox
from travelagent.realtime.output import Flusher
from travelagent.realtime.webhook_http import Endpoint
from travelagent.realtime.webhook_sender import DeadLetter, WebhookSender
from travelagent.wire.server_api import reply_key
from travelagent.wire.trace import now_ns
from travelagent.wire.webhooks import DEFAULT_TOLERANCE_S, secret_key


class RealtimeService:
    """Everything one running service holds: config, hub (channels, history), webhooks."""

    def __init__(self, config: RealtimeConfig) -> None:
        self.config = config
        self.node_id = str(uuid.uuid4())
        if config.idempotency_ttl_s < DEFAULT_TOLERANCE_S:
            raise ValueError(
                f"idempotency_ttl_s must be at least the webhook timestamp tolerance "
                f"({DEFAULT_TOLERANCE_S} s): a redelivery could otherwise outlive its key"
            )
        history: History
        idempotency = IdempotencyCache(
            ttl_s=config.idempotency_ttl_s, max_size=config.idempotency_max_keys
        )
        if config.history == "sqlite":
            from travelagent.realtime.history_sqlite import SqliteHistory

            history = SqliteHistory(
                config.db_path,
                config.history_policies,
                max_streams=config.history_max_streams,
                stream_ttl_s=config.history_stream_ttl_s,
            )
            # Keys in the same file: a publish retried after a restart is still answered once.
            # The file keeps every key for the ttl, so memory holds only the newest.
            idempotency = SqliteIdempotencyCache(
                config.db_path,
                ttl_s=config.idempotency_ttl_s,
                max_size=min(config.idempotency_max_keys, DURABLE_MEMORY_KEYS),
            )
        elif config.history == "memory":
            history = History(
                config.history_policies,
                max_streams=config.history_max_streams,
                stream_ttl_s=config.history_stream_ttl_s,
            )
        else:
            raise ValueError(f"history must be 'memory' or 'sqlite', not {config.history!r}")
        self.hub = Hub(history=history, idempotency=idempotency)
        self.webhooks: WebhookSender | None = None
        if config.webhook_url:
            _check_webhook_settings(config)
            self.webhooks = WebhookSender(
                config.webhook_url,
                config.webhook_secret,
                queue_size=config.webhook_queue_size,
                workers=config.webhook_workers,
                timeout_s=config.webhook_timeout_s,
                retry_schedule_s=config.webhook_retry_schedule_s,
                on_dead_letter=self._tell_user,
                outbox=Outbox(config.webhook_outbox_path) if config.webhook_outbox_path else None,
            )
        self.publisher_sockets = 0
        self.sockets: set[web.WebSocketResponse] = set()
        self.output = Flusher()  # client sockets with output queued (output.py)
        self.per_address = ConnectionLimiter(config.max_connections_per_address)
        self.per_user = ConnectionLimiter(config.max_connections_per_user)

    def _tell_user(self, letter: DeadLetter) -> None:
        """A message's webhook was given up on: its reply will never come, so the channel gets
        an ``isError`` ``agent_response`` saying why, keyed as the reply's final publication
        (``<msg id>:final``), so the channel holds one final for the message either way."""
        event = letter.event
        message = event.get("message")
        if event.get("type") != "message" or not isinstance(message, dict):
            return
        msg_id = message.get("id")
        data: dict[str, Any] = {
            "type": "agent_response",
            "userId": event.get("userId"),
            "text": f"the agent could not be reached: {letter.reason}",
            "isError": True,
        }
        key = None
        if isinstance(msg_id, str):
            data["id"] = msg_id
            key = reply_key(msg_id, "final")
        if isinstance(message.get("trace"), dict):
            data["trace"] = message["trace"]
        self.hub.publish(str(event.get("room")), data, api_recv_ns=now_ns(), idempotency_key=key)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.hub.info()
        out["publisher_sockets"] = self.publisher_sockets
        out["history_streams"] = len(self.hub.history.streams)
        out["history_evicted_streams"] = self.hub.history.evicted_streams
        out["idempotency_keys"] = len(self.hub.idempotency)
        if self.webhooks is not None:
            out.update(self.webhooks.stats())
        return out

    async def start(self, app: web.Application) -> None:
        if self.webhooks is not None:
            self.webhooks.start()

    async def stop(self, app: web.Application) -> None:
        if self.webhooks is not None:
            await self.webhooks.aclose()
            if self.webhooks.outbox is not None:
                self.webhooks.outbox.close()
        self.hub.history.close()
        if isinstance(self.hub.idempotency, SqliteIdempotencyCache):
            self.hub.idempotency.close()

    async def close_sockets(self, app: web.Application | None = None) -> None:
        # Open WebSockets would otherwise hold shutdown for aiohttp's whole grace period.
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.close(code=1001, message=b"shutdown")


def _check_webhook_settings(config: RealtimeConfig) -> None:
    """Fail at start, with a reason, rather than on every webhook later."""
    Endpoint.from_url(config.webhook_url)  # raises ValueError for one that is not http(s)://host
    secret_key(config.webhook_secret)  # raises ValueError for a secret that is not whsec_<b64>


SERVICE = web.AppKey("service", RealtimeService)
