"""One Centrifugo client session as a state machine; pure code, no I/O.

Design rules (every rule that changes a session's state lives here):
- Text in, output out: ``receive_text(text, t_ns)`` takes one WebSocket text frame and the time
  it arrived; ``data_to_send()`` hands back the messages queued for the client (replies, and
  pushes the hub fans out to this session), ``actions_to_do()`` what else the adapter must do:
  send a webhook, start the ping timer, arm the token expiry, close the socket.
- The clock is injected (``clock_s``); the adapter drives time by calling ``ping_due()`` every
  ping interval and ``token_expired()`` when the armed expiry fires.
- Before a successful connect only ``connect`` is served; any other command ends the session,
  as Centrifugo does. Once closing, nothing more is queued or served.
- Commands are dispatched through ``COMMANDS``, an explicit table of method to handler.
- A client whose queue is over ``max_queued_messages`` or ``max_queued_bytes`` is disconnected
  as a slow consumer.
- A user at ``max_connections_per_user`` open connections has the next connect refused
  (3504, "connection limit"); the slot is given back when the session ends.
- A socket that has not connected when ``connect_deadline_passed()`` is called (the adapter
  calls it ``connect_timeout_s`` after the upgrade) is closed as stale (3502).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from travelagent.limits import ConnectionLimiter
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.hub import Hub, stamp, trace_of
from travelagent.wire import centrifugo as cf
from travelagent.wire.tokens import TokenError, TokenExpired, verify_token
from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import ROOM_GRANTED, webhook_event

log = logging.getLogger(__name__)
VERSION = "travelagent-realtime 0.1"


@dataclass(frozen=True)
class SendWebhook:
    """An event for the worker; ``trace`` is stamped ``realtime.webhook`` when it goes out."""

    event: dict[str, Any]
    trace: Trace | None = None


@dataclass(frozen=True)
class StartPinger:
    """Call ``ping_due()`` every ``interval_s`` from now on."""

    interval_s: float


@dataclass(frozen=True)
class ArmExpiry:
    """Call ``token_expired()`` in ``delay_s``."""

    delay_s: float


@dataclass(frozen=True)
class CloseConnection:
    """Send what is queued, then close the socket with ``code`` and ``reason``."""

    code: int
    reason: str


Action = SendWebhook | StartPinger | ArmExpiry | CloseConnection


def _always_room(pending: int) -> bool:
    return True


class ClientSession:
    """The Centrifugo session of one client; the hub's subscriber for its channels.

    ``webhook_room(pending)`` says whether the webhook queue can take one more event when
    ``pending`` events are still waiting in ``actions_to_do()``; None means no webhooks at all.
    ``wake`` is called whenever output is queued, so an adapter can wake its writer.
    """

    Handler = Callable[["ClientSession", dict[str, Any], int], dict[str, Any]]
    COMMANDS: ClassVar[dict[str, Handler]]
    # One per open connection: slots, not a per-instance dict (docs/bench.md, "Memory").
    __slots__ = (
        "_actions",
        "_holds_user_slot",
        "_out",
        "_out_bytes",
        "_per_user",
        "_wake",
        "_webhook_room",
        "awaiting_pong",
        "channels",
        "client_id",
        "clock_s",
        "closing",
        "config",
        "grants",
        "hub",
        "user",
        "webhooks_on",
    )

    def __init__(
        self,
        hub: Hub,
        config: RealtimeConfig,
        *,
        webhook_room: Callable[[int], bool] | None = None,
        clock_s: Callable[[], float] = time.time,
        client_id: str | None = None,
        wake: Callable[[], None] = lambda: None,
        per_user: ConnectionLimiter | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.webhooks_on = webhook_room is not None
        self._webhook_room = webhook_room or _always_room
        self.clock_s = clock_s
        self.client_id = client_id or str(uuid.uuid4())
        self.user = ""
        self.grants: cf.Grants | None = None
        self.channels: set[str] = set()
        self.closing = False
        self.awaiting_pong = False
        self._wake = wake
        self._out: list[str] = []
        self._out_bytes = 0
        self._actions: list[Action] = []
        self._per_user = per_user
        self._holds_user_slot = False

    # --- output ---------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Queue one message for the client (the hub calls this to fan out pushes)."""
        if self.closing:
            return
        size = len(text)  # characters: bytes for the ASCII JSON we send, close enough else
        if (
            len(self._out) >= self.config.max_queued_messages
            or self._out_bytes + size > self.config.max_queued_bytes
        ):
            self.hub.counters.slow_disconnects += 1
            self.close(cf.DISCONNECT_SLOW)
            return
        self._out.append(text)
        self._out_bytes += size
        self._wake()

    def send_obj(self, obj: dict[str, Any]) -> None:
        self.send(cf.dumps(obj))

    def data_to_send(self) -> list[str]:
        """The messages queued since the last call, oldest first (one frame's worth)."""
        out, self._out = self._out, []
        self._out_bytes = 0
        return out

    def actions_to_do(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        self._actions.append(CloseConnection(code, reason or cf.DISCONNECT_REASONS.get(code, "")))
        self._wake()

    # --- input --------------------------------------------------------------------------------
    def receive_text(self, text: str, t_ns: int) -> None:
        """Serve every message of one text frame that arrived at ``t_ns``."""
        try:
            messages = cf.decode_frame(text)
        except cf.ProtocolError as err:
            self.close(err.code, err.reason)
            return
        for m in messages:
            if self.closing:
                return
            if isinstance(m, cf.Pong):
                self.awaiting_pong = False
            elif isinstance(m, cf.BadCommand):
                if m.id == 0:
                    self.close(cf.DISCONNECT_BAD_REQUEST)
                    return
                self.send_obj(cf.error_reply(m.id, m.code, m.message))
            else:
                self._on_command(m, t_ns)

    def receive_binary(self) -> None:
        self.close(cf.DISCONNECT_BAD_REQUEST, "binary frames not supported")

    def ping_due(self) -> None:
        """The ping interval passed: ping, or disconnect a client that never answered."""
        if self.closing:
            return
        if self.awaiting_pong:
            self.close(cf.DISCONNECT_NO_PONG)
            return
        self.awaiting_pong = True
        self.send(cf.PING)

    def connect_deadline_passed(self) -> None:
        """The connect deadline passed: a socket that never connected is closed as stale."""
        if self.grants is None and not self.closing:
            self.hub.counters.connect_timeouts += 1
            self.close(cf.DISCONNECT_STALE, "stale: no connect in time")

    def token_expired(self) -> None:
        self.close(cf.DISCONNECT_EXPIRED)

    def connection_lost(self) -> None:
        """The socket is gone: leave every channel and say so."""
        for channel in list(self.channels):
            self._leave(channel)
        if self._holds_user_slot and self._per_user is not None:
            self._per_user.release(self.user)
            self._holds_user_slot = False
        if self.grants is not None:
            self.hub.counters.connections -= 1
            if self.config.webhook_connection:
                self._webhook("connection", "", text="disconnect")

    # --- commands ---------------------------------------------------------------------------
    def _on_command(self, cmd: cf.Command, t_ns: int) -> None:
        if cmd.method == "connect":
            self._connect(cmd)
            return
        if self.grants is None:
            # As Centrifugo: any command before a successful connect ends the connection.
            self.close(cf.DISCONNECT_BAD_REQUEST, "connect first")
            return
        handler = self.COMMANDS[cmd.method]
        try:
            result = handler(self, cmd.params, t_ns)
        except cf.ReplyError as err:
            self.send_obj(cf.error_reply(cmd.id, err))
            return
        except Exception:  # a bug answers this command with 100; the session carries on
            log.exception("command %s %s failed", cmd.id, cmd.method)
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_INTERNAL))
            return
        self.send_obj(cf.reply(cmd.id, cmd.method, result))

    def _connect(self, cmd: cf.Command) -> None:
        if self.grants is not None:
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_BAD_REQUEST, "bad request: connected"))
            return
        cfg = self.config
        token = cmd.params.get("token")
        if not isinstance(token, str) or not token:
            self.close(cf.DISCONNECT_INVALID_TOKEN, "invalid token: no token")
            return
        try:
            claims = verify_token(token, cfg.token_policy(), now_s=self.clock_s())
        except TokenExpired:
            # Temporary for the SDK: it fetches a new token (if it can) and reconnects.
            self.send_obj(cf.error_reply(cmd.id, cf.ERROR_TOKEN_EXPIRED))
            return
        except TokenError as err:
            self.hub.counters.refused_tokens += 1
            self.close(cf.DISCONNECT_INVALID_TOKEN, f"invalid token: {err}"[:120])
            return
        user = claims.user
        if self._per_user is not None:
            if not self._per_user.acquire(user):
                self.hub.counters.refused_per_user += 1
                self.close(
                    cf.DISCONNECT_CONNECTION_LIMIT, "connection limit: too many for this user"
                )
                return
            self._holds_user_slot = True
        self.user = user
        self.grants = cf.Grants.build(
            user, config_rooms=cfg.allowed_rooms, token_rooms=claims.rooms
        )
        self.hub.counters.connections += 1
        self.hub.counters.connections_total += 1
        # No refresh support: the connection ends when its token does; the SDK reconnects.
        self._actions.append(ArmExpiry(max(0.0, claims.exp_s - self.clock_s())))
        interval_s = cfg.ping_interval_s
        result: dict[str, Any] = {"client": self.client_id, "version": VERSION}
        if interval_s > 0:
            result.update(ping=max(1, round(interval_s)), pong=True)
            self._actions.append(StartPinger(interval_s))
        self.send_obj(cf.reply(cmd.id, "connect", result))
        if cfg.webhook_connection:
            self._webhook("connection", "", text="connect")

    def _check(self, channel: str) -> None:
        assert self.grants is not None
        code = cf.channel_permission(self.grants, channel)
        if code is not None:
            raise cf.ReplyError(code)

    def _subscribe(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        req = cf.parse_subscribe(params)
        self._check(req.channel)
        hub = self.hub
        if req.channel in self.channels:
            raise cf.ReplyError(cf.ERROR_ALREADY_SUBSCRIBED)
        result: dict[str, Any] = {}
        if hub.history.policy(req.channel) is not None:
            if req.recover:
                rec = hub.history.recover(req.channel, req.offset, req.epoch, now_s=self.clock_s())
                if not rec.recovered and req.flag & cf.SUBSCRIBE_FLAG_REJECT_UNRECOVERED:
                    raise cf.ReplyError(cf.ERROR_UNRECOVERABLE_POSITION)
                offset, epoch = rec.offset, rec.epoch
                result.update(was_recovering=True, recovered=rec.recovered)
                if rec.publications:
                    result["publications"] = [p.to_wire() for p in rec.publications]
            else:
                offset, epoch = hub.history.position(req.channel, now_s=self.clock_s())
            result.update(recoverable=True, positioned=True, offset=offset, epoch=epoch)
        # Reading the position and joining happen in one step: nothing can slip in between.
        hub.subscribe(self, req.channel, join_leave=req.join_leave)
        self.channels.add(req.channel)
        if self._presence_webhooks(req.channel):
            self._webhook("presence", req.channel, text="join", action="join")
        return result

    def _leave(self, channel: str) -> None:
        self.channels.discard(channel)
        if self.hub.unsubscribe(self, channel) and self._presence_webhooks(channel):
            self._webhook("presence", channel, text="leave", action="leave")

    def _unsubscribe(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        self._leave(cf.channel_param(params))
        return {}

    def _publish(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        if "data" not in params:
            raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: publish needs data")
        data = params["data"]
        if self.webhooks_on and not self._webhook_room(self._pending_webhooks()):
            # Refuse rather than publish an event the worker would never hear about.
            raise cf.ReplyError(cf.ERROR_LIMIT_EXCEEDED, "limit exceeded: webhook queue full")
        trace = trace_of(data)
        if trace is not None:
            stamp(trace, "realtime.recv", t_ns)
        info = cf.client_info(self.client_id, self.user)
        self.hub.publish(channel, data, info=info, trace=trace)
        if self.webhooks_on:
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
                timestamp_ms=self._now_ms(),
            )
            if cf.split_channel(channel)[0] == cf.ROOM_NAMESPACE:
                # The worker answers in a shared room only on this word: _check found the room
                # in this user's grants (the event is signed, so nobody else can say it).
                event[ROOM_GRANTED] = True
            self._actions.append(SendWebhook(event, trace.copy() if trace else None))
        return {}

    def _presence(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        return {"presence": self.hub.presence(channel)}

    def _presence_stats(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        channel = cf.channel_param(params)
        self._check(channel)
        return self.hub.presence_stats(channel)

    def _history(self, params: dict[str, Any], t_ns: int) -> dict[str, Any]:
        req = cf.parse_history(params)
        self._check(req.channel)
        if self.hub.history.policy(req.channel) is None:
            raise cf.ReplyError(cf.ERROR_NOT_AVAILABLE)
        return self.hub.history_read(
            req.channel, limit=req.limit, since=req.since, reverse=req.reverse
        )

    # --- webhooks ---------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self.clock_s() * 1000)

    def _pending_webhooks(self) -> int:
        return sum(isinstance(a, SendWebhook) for a in self._actions)

    def _presence_webhooks(self, channel: str) -> bool:
        return self.config.webhook_presence and cf.split_channel(channel)[0] == cf.ROOM_NAMESPACE

    def _webhook(self, kind: str, room: str, *, text: str, action: str = "") -> None:
        if not self.webhooks_on:
            return
        extra = {"action": action} if action else None
        event = webhook_event(
            kind,
            room=room,
            user_id=self.user,
            text=text,
            timestamp_ms=self._now_ms(),
            extra_message=extra,
        )
        self._actions.append(SendWebhook(event))


# The commands a connected client may send (``connect`` is served before this table).
ClientSession.COMMANDS = {
    "subscribe": ClientSession._subscribe,
    "unsubscribe": ClientSession._unsubscribe,
    "publish": ClientSession._publish,
    "presence": ClientSession._presence,
    "presence_stats": ClientSession._presence_stats,
    "history": ClientSession._history,
}
assert set(ClientSession.COMMANDS) | {"connect"} == cf.SUPPORTED_METHODS
