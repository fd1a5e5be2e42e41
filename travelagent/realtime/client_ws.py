"""``/connection/websocket``: one client session speaking Centrifugo's JSON protocol.

The session reads frames, hands each line to the pure codec, runs the command against the hub
and queues replies; one writer task sends whatever is queued, several messages per frame, so a
burst of pushes costs one WebSocket write. The server pings with ``{}`` every
``ping_interval_s``; a client that has not answered by the next ping is disconnected (3012).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from travelagent.realtime.hub import stamp, trace_of
from travelagent.realtime.service import SERVICE, RealtimeService
from travelagent.realtime.webhook_sender import WebhookJob, now_ms
from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import now_ns
from travelagent.wire.webhooks import webhook_event

log = logging.getLogger(__name__)
VERSION = "travelagent-realtime 0.1"


class ClientSession:
    def __init__(self, service: RealtimeService, ws: web.WebSocketResponse) -> None:
        self.service = service
        self.ws = ws
        self.client_id = str(uuid.uuid4())
        self.user = ""
        self.grants: cf.Grants | None = None
        self.channels: set[str] = set()
        self._out: list[str] = []
        self._out_ready = asyncio.Event()
        self._closing = False
        self._awaiting_pong = False
        self._tasks: list[asyncio.Task[None]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._close_task: asyncio.Task[None] | None = None

    # --- output -------------------------------------------------------------------------
    def send(self, text: str) -> None:
        if self._closing:
            return
        if len(self._out) >= self.service.config.max_queued_messages:
            self.service.hub.counters.slow_disconnects += 1
            self.close_soon(cf.DISCONNECT_SLOW)
            return
        self._out.append(text)
        self._out_ready.set()

    def send_obj(self, obj: dict[str, Any]) -> None:
        self.send(cf.dumps(obj))

    async def _writer(self) -> None:
        while True:
            await self._out_ready.wait()
            self._out_ready.clear()
            batch, self._out = self._out, []
            if batch:
                try:
                    await self.ws.send_str(cf.encode(batch))
                except (ConnectionError, RuntimeError):
                    return

    def close_soon(self, code: int, reason: str = "") -> None:
        if self._closing:
            return
        self._closing = True
        message = (reason or cf.DISCONNECT_REASONS.get(code, "")).encode()
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, message))

    async def _close(self, code: int, message: bytes) -> None:
        # Flush what is queued (e.g. the error reply explaining the close) before closing.
        if self._out:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(cf.encode(self._out))
            self._out = []
        await self.ws.close(code=code, message=message)

    async def _pinger(self) -> None:
        interval_s = self.service.config.ping_interval_s
        while True:
            await asyncio.sleep(interval_s)
            if self._awaiting_pong:
                self.close_soon(cf.DISCONNECT_NO_PONG)
                return
            self._awaiting_pong = True
            self.send(cf.PING)

    # --- the session ----------------------------------------------------------------------
    async def run(self) -> None:
        self._tasks.append(asyncio.create_task(self._writer()))
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_frame(msg.data, now_ns())
                elif msg.type == WSMsgType.BINARY:
                    self.close_soon(cf.DISCONNECT_BAD_REQUEST, "binary frames not supported")
                # ERROR (e.g. a frame over max_msg_size): aiohttp already closed with 1009.
                if self._closing:
                    break
        finally:
            for t in self._tasks:
                t.cancel()
            if self._expiry is not None:
                self._expiry.cancel()
            self._cleanup()
            if self._close_task is not None:
                await self._close_task

    def _cleanup(self) -> None:
        hub = self.service.hub
        for channel in list(self.channels):
            self._leave(channel)
        if self.grants is not None:
            hub.counters.connections -= 1
            if self.service.config.webhook_connection:
                self._webhook("connection", "", text="disconnect")

    def _on_frame(self, text: str, t_ns: int) -> None:
        try:
            messages = cf.decode_frame(text)
        except cf.ProtocolError as err:
            self.close_soon(err.code, err.reason)
            return
        for m in messages:
            if self._closing:
                return
            if isinstance(m, cf.Pong):
                self._awaiting_pong = False
            elif isinstance(m, cf.BadCommand):
                if m.id == 0:
                    self.close_soon(cf.DISCONNECT_BAD_REQUEST)
                    return
                self.send_obj(cf.error_reply(m.id, m.code, m.message))
            else:
                self._on_command(m, t_ns)

    def _on_command(self, cmd: cf.Command, t_ns: int) -> None:
        if cmd.method == "connect":
            self._connect(cmd)
            return
        if self.grants is None:
            # As Centrifugo: any command before a successful connect ends the connection.
            self.close_soon(cf.DISCONNECT_BAD_REQUEST, "connect first")
            return
        handler = getattr(self, "_cmd_" + cmd.method)
        try:
            result = handler(cmd.params, t_ns)
        except cf.ReplyError as err:
            self.send_obj(cf.error_reply(cmd.id, err))
            return
        except Exception:  # a bug answers this command with 100; the session carries on
            log.exception("command %s %s failed", cmd.id, cmd.method)
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_INTERNAL))
            return
        self.send_obj(cf.reply(cmd.id, cmd.method, result))

    # --- connect ----------------------------------------------------------------------------
    def _connect(self, cmd: cf.Command) -> None:
        if self.grants is not None:
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_BAD_REQUEST, "bad request: connected"))
            return
        cfg = self.service.config
        token = cmd.params.get("token")
        if not isinstance(token, str) or not token:
            self.close_soon(cf.DISCONNECT_INVALID_TOKEN, "invalid token: no token")
            return
        try:
            claims = jwt.decode(
                token, cfg.jwt_secret, algorithms=["HS256"], options={"require": ["sub"]}
            )
        except jwt.ExpiredSignatureError:
            # Temporary for the SDK: it fetches a new token (if it can) and reconnects.
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_TOKEN_EXPIRED))
            return
        except jwt.InvalidTokenError as err:
            self.close_soon(cf.DISCONNECT_INVALID_TOKEN, f"invalid token: {err}"[:120])
            return
        user = claims.get("sub")
        if not isinstance(user, str) or not user:
            self.close_soon(cf.DISCONNECT_INVALID_TOKEN, "invalid token: sub must be a string")
            return
        self.user = user
        self.grants = cf.Grants.build(
            user, config_rooms=cfg.allowed_rooms, token_rooms=claims.get("rooms")
        )
        self.service.hub.counters.connections += 1
        self.service.hub.counters.connections_total += 1
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            # No refresh support: the connection ends when its token does; the SDK reconnects.
            delay_s = max(0.0, exp - time.time())
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(delay_s, self.close_soon, cf.DISCONNECT_EXPIRED)
        interval = self.service.config.ping_interval_s
        result: dict[str, Any] = {"client": self.client_id, "version": VERSION}
        if interval > 0:
            result.update(ping=max(1, round(interval)), pong=True)
            self._tasks.append(asyncio.create_task(self._pinger()))
        self.send_obj(cf.reply(cmd.id, "connect", result))
        if cfg.webhook_connection:
            self._webhook("connection", "", text="connect")

    # --- channel commands -----------------------------------------------------------------
    def _check(self, channel: str) -> None:
        assert self.grants is not None
        code = cf.channel_permission(self.grants, channel)
        if code is not None:
            raise cf.ReplyError(code)

    def _cmd_subscribe(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        req = cf.parse_subscribe(params)
        self._check(req.channel)
        hub = self.service.hub
        if req.channel in self.channels:
            raise cf.ReplyError(cf.ERROR_ALREADY_SUBSCRIBED)
        result: dict[str, Any] = {}
        if hub.history.policy(req.channel) is not None:
            if req.recover:
                rec = hub.history.recover(req.channel, req.offset, req.epoch, now_s=time.time())
                if not rec.recovered and req.flag & cf.SUBSCRIBE_FLAG_REJECT_UNRECOVERED:
                    raise cf.ReplyError(cf.ERROR_UNRECOVERABLE_POSITION)
                offset, epoch = rec.offset, rec.epoch
                result.update(was_recovering=True, recovered=rec.recovered)
                if rec.publications:
                    result["publications"] = [p.to_wire() for p in rec.publications]
            else:
                offset, epoch = hub.history.position(req.channel)
            result.update(recoverable=True, positioned=True, offset=offset, epoch=epoch)
        # No await between reading the position and joining: nothing can slip in between.
        hub.subscribe(self, req.channel, join_leave=req.join_leave)
        self.channels.add(req.channel)
        if self._presence_webhooks(req.channel):
            self._webhook("presence", req.channel, text="join", action="join")
        return result

    def _leave(self, channel: str) -> None:
        self.channels.discard(channel)
        if self.service.hub.unsubscribe(self, channel) and self._presence_webhooks(channel):
            self._webhook("presence", channel, text="leave", action="leave")

    def _cmd_unsubscribe(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        self._leave(cf.channel_param(params))
        return {}

    def _cmd_publish(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        if "data" not in params:
            raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: publish needs data")
        data = params["data"]
        sender = self.service.webhooks
        if sender is not None and not sender.has_room():
            # Refuse rather than publish an event the worker would never hear about.
            sender.counters.rejected_full += 1
            raise cf.ReplyError(cf.ERROR_LIMIT_EXCEEDED, "limit exceeded: webhook queue full")
        trace = trace_of(data)
        if trace is not None:
            stamp(trace, "realtime.recv", t_ns)
        info = cf.client_info(self.client_id, self.user)
        self.service.hub.publish(channel, data, info=info, trace=trace)
        if sender is not None:
            text = data.get("text") if isinstance(data, dict) else None
            msg_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(msg_id, str):
                msg_id = trace.id if trace is not None else None
            event = webhook_event(
                "message",
                room=channel,
                user_id=self.user,
                text=text if isinstance(text, str) else cf.dumps(data),
                msg_id=msg_id,
                timestamp_ms=now_ms(),
            )
            sender.offer(WebhookJob(event=event, trace=trace.copy() if trace else None))
        return {}

    def _cmd_presence(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        return {"presence": self.service.hub.presence(channel)}

    def _cmd_presence_stats(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        return self.service.hub.presence_stats(channel)

    def _cmd_history(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        req = cf.parse_history(params)
        self._check(req.channel)
        if self.service.hub.history.policy(req.channel) is None:
            raise cf.ReplyError(cf.ERROR_NOT_AVAILABLE)
        return self.service.hub.history_read(
            req.channel, limit=req.limit, since=req.since, reverse=req.reverse
        )

    # --- webhooks ------------------------------------------------------------------------------
    def _presence_webhooks(self, channel: str) -> bool:
        return (
            self.service.config.webhook_presence
            and cf.split_channel(channel)[0] == cf.ROOM_NAMESPACE
        )

    def _webhook(self, kind: str, room: str, *, text: str, action: str = "") -> None:
        sender = self.service.webhooks
        if sender is None:
            return
        extra = {"action": action} if action else None
        event = webhook_event(
            kind,
            room=room,
            user_id=self.user,
            text=text,
            timestamp_ms=now_ms(),
            extra_message=extra,
        )
        sender.offer(WebhookJob(event=event))


async def handle_client_websocket(request: web.Request) -> web.WebSocketResponse:
    service: RealtimeService = request.app[SERVICE]
    ws = web.WebSocketResponse(
        max_msg_size=service.config.max_frame_bytes, autoping=True, compress=False
    )
    await ws.prepare(request)
    session = ClientSession(service, ws)
    service.sockets.add(ws)
    try:
        await session.run()
    finally:
        service.sockets.discard(ws)
        if not ws.closed:
            await ws.close()
    return ws
