"""The webhook route's decisions: parse, verify, de-duplicate, decide; pure code, no I/O.

Every rule that decides what a request to ``POST /api/realtime/webhook`` becomes lives here,
in this order: a Standard Webhook is verified (401), its event read (400), de-duplicated by
``webhook-id`` (a retry is handed back with the turn remembered for it; an id an earlier
process received, known from the durable log, is answered as a duplicate or, for a message,
started again under its message-id key, which replays the stored reply), and then either
acknowledged (presence, connection) or turned into a ``TurnOrder``. A message's ``userId``
and ``room`` must belong together (``room_refusal``; 403 otherwise), because the reply goes to
that room. A request without Standard Webhooks headers is Centrifugo's publish proxy,
authenticated by ``X-API-Key``.
The handler in ``webhook.py`` reads the body, asks ``WebhookIntake.receive`` and does what the
decision says; it is the one place that builds a ``RealtimeTurn`` from a ``TurnOrder``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from travelagent.wire import gateway as gw
from travelagent.wire import proxy
from travelagent.wire.centrifugo import ERROR_PERMISSION_DENIED
from travelagent.wire.trace import Trace, TraceError, new_msg_id
from travelagent.wire.webhooks import (
    HEADER_ID,
    ROOM_GRANTED,
    WebhookVerificationError,
    event_user,
    header,
    is_standard_webhook,
    parse_event,
    verify,
)

MAX_WEBHOOK_BYTES = 1 << 20

T = TypeVar("T")


class Deduplicator(Generic[T]):
    """Remembers recent webhook ids and what each one started, until that is settled
    (``release``): only ids are kept for the whole ttl.

    Where the ids live: ``persist(webhook_id, t_s)`` is called for every new id, so the durable
    log knows it; ``lookup(webhook_id)`` asks that log when an id is in neither memory set, and
    answers with when it was first received (None: never, or past the ttl). With a lookup,
    memory holds the turns not yet settled and the newest ``max_ids`` ids, so it does not grow
    with the message rate times the ttl; without one, every id stays in memory for the ttl (at
    most ``max_size``). The log is asked only while it may know an id memory does not hold: an
    id left memory, or an earlier process wrote one (``log_until_s``: its newest), within the
    ttl; below ``max_ids`` / ttl webhooks a second (18/s at the defaults) it is never asked.
    ``earlier`` holds ids an earlier process received, handed over at start
    (the lookup makes it unneeded). ``clock_s`` is the wall clock: ages must compare across
    processes. An id found only by the lookup counts as received earlier (``seen_earlier``):
    its message is started again and its turn's message-id key replays the stored reply.
    """

    def __init__(
        self,
        *,
        max_size: int = 100_000,
        ttl_s: float = 600.0,
        clock_s: Callable[[], float] = time.time,
        earlier: Mapping[str, float] | None = None,
        persist: Callable[[str, float], None] | None = None,
        lookup: Callable[[str], float | None] | None = None,
        max_ids: int = 16_384,
        log_until_s: float | None = None,
    ) -> None:
        if max_size < 1 or max_ids < 1:
            raise ValueError("max_size and max_ids must be at least 1")
        self.max_size, self.ttl_s, self.clock_s = max_size, ttl_s, clock_s
        self.persist, self.lookup = persist, lookup
        self.max_ids = max_ids if lookup is not None else max_size
        self._ids: OrderedDict[str, float] = OrderedDict()  # every id remembered, oldest first
        self._turns: OrderedDict[str, tuple[float, T]] = OrderedDict()  # unsettled, oldest first
        self._earlier: OrderedDict[str, float] = OrderedDict(
            sorted((earlier or {}).items(), key=lambda kv: kv[1])
        )
        # The newest time an id left memory or was written by an earlier process
        # (``log_until_s``): while it is older than the ttl, memory holds every id the log
        # could answer for, a miss is "new" and the log is not asked.
        self._unheld_until_s = log_until_s if log_until_s is not None else float("-inf")
        self.lookups = 0  # times the log was asked

    def get(self, webhook_id: str) -> tuple[bool, T | None]:
        """(seen in this process, what it started)."""
        self._expire()
        entry = self._turns.get(webhook_id)
        if entry is not None:
            return (True, entry[1])
        return (webhook_id in self._ids, None)

    def seen_earlier(self, webhook_id: str) -> bool:
        """Whether an earlier process received ``webhook_id`` (within the ttl), or this one did
        and memory has let it go: the durable log still knows it."""
        self._expire()
        if webhook_id in self._earlier:
            return True
        if self.lookup is None or self._unheld_until_s < self.clock_s() - self.ttl_s:
            return False
        self.lookups += 1
        t_s = self.lookup(webhook_id)
        return t_s is not None and t_s >= self.clock_s() - self.ttl_s

    def remember(self, webhook_id: str, turn: T | None) -> None:
        t_s = self.clock_s()
        first = webhook_id not in self._ids and webhook_id not in self._earlier
        self._ids[webhook_id] = t_s
        self._ids.move_to_end(webhook_id)
        while len(self._ids) > self.max_ids:
            self._unheld_until_s = self._ids.popitem(last=False)[1]
        if turn is not None:
            self._turns[webhook_id] = (t_s, turn)
            self._turns.move_to_end(webhook_id)
            while len(self._turns) > self.max_size:
                self._turns.popitem(last=False)
        if first and self.persist is not None:
            self.persist(webhook_id, t_s)

    def release(self, webhook_id: str) -> None:
        """Keep ``webhook_id`` but drop what it started (its turn was published: a redelivery
        is then answered as a duplicate, and the turn's reply, trace and task need not be held
        for the rest of the ttl)."""
        self._turns.pop(webhook_id, None)

    def forget(self, webhook_id: str) -> None:
        """Forget an id this process remembered (its turn could not be started)."""
        self._ids.pop(webhook_id, None)
        self._turns.pop(webhook_id, None)

    def _expire(self) -> None:
        cutoff = self.clock_s() - self.ttl_s
        for held in (self._ids, self._earlier):
            while held and next(iter(held.values())) < cutoff:
                held.popitem(last=False)
        while self._turns and next(iter(self._turns.values()))[0] < cutoff:
            self._turns.popitem(last=False)

    def __len__(self) -> int:
        """Ids held in memory."""
        return len(self._ids)

    @property
    def unsettled(self) -> int:
        """Turns held until they are published."""
        return len(self._turns)


@dataclass(frozen=True)
class TurnOrder:
    """What one agent turn on the realtime path needs; its trace is stamped ``worker.recv``."""

    channel: str
    user_id: str
    msg_id: str
    text: str
    trace: Trace
    stream: bool


@dataclass(frozen=True)
class Respond:
    """Answer at once with ``status`` and ``body``; count ``stat`` if set."""

    status: int
    body: dict[str, Any]
    stat: str | None = None


@dataclass(frozen=True)
class Redeliver(Generic[T]):
    """A retried webhook: ``prior`` is what its first delivery started (None: nothing)."""

    prior: T | None


@dataclass(frozen=True)
class StartTurn:
    """Start the turn. ``webhook_id`` is remembered with it (None: the publish proxy, which
    Centrifugo does not retry). ``ack`` is the body to answer at once while the turn runs in
    the background; None means answer once the reply is published."""

    order: TurnOrder
    webhook_id: str | None
    ack: dict[str, Any] | None
    stat: str


Decision = Respond | Redeliver[T] | StartTurn


def _bad(reason: str) -> Respond:
    return Respond(400, {"error": reason})


def room_refusal(channel: str, user: str, *, room_granted: bool) -> str | None:
    """Why ``user``'s agent may not answer a message in ``channel`` (None: it may).

    The reply is published to ``channel``, so the pairing is checked, never trusted:
    - ``travel:<u>``, a user's own agent channel: only ``u`` itself;
    - ``room:<name>``, a shared room: only when the signed event says the realtime service
      found the room in the user's grants (``"roomGranted": true``); nobody else can tell;
    - any other channel: only when the channel is the user's id, the original's convention that
      a room names its user's agent (``event_user`` takes the room for a missing ``userId``).
    """
    namespace, sep, name = channel.partition(":")
    if sep and namespace == "travel":
        if name == user:
            return None
        return f"room {channel!r} is another user's channel, not travel:{user}"
    if sep and namespace == "room":
        if room_granted:
            return None
        return f"room {channel!r} is not granted to user {user!r} by the realtime service"
    if channel == user:
        return None
    return f"room {channel!r} does not belong to user {user!r}"


class WebhookIntake(Generic[T]):
    """Decides what each request to the webhook route becomes.

    Secrets are read through ``webhook_secret`` and ``api_key`` per request, so a rotated
    environment takes effect at once; ``now_s`` is the wall clock for signature tolerance.
    """

    def __init__(
        self,
        *,
        webhook_secret: Callable[[], str],
        api_key: Callable[[], str],
        tolerance_s: int,
        ack_first: bool,
        default_stream: bool,
        process: str,
        dedup: Deduplicator[T],
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.webhook_secret, self.api_key = webhook_secret, api_key
        self.tolerance_s, self.ack_first = tolerance_s, ack_first
        self.default_stream, self.process = default_stream, process
        self.dedup = dedup
        self.now_s = now_s

    def receive(self, headers: Mapping[str, str], body: bytes, *, t_recv_ns: int) -> Decision[T]:
        if not is_standard_webhook(headers):
            return self._publish_proxy(headers, body, t_recv_ns)
        try:
            verify(
                self.webhook_secret(),
                headers,
                body,
                tolerance_s=self.tolerance_s,
                now_s=int(self.now_s()),
            )
        except WebhookVerificationError as err:
            return Respond(
                401, {"error": f"webhook verification failed: {err}"}, "webhook_unauthorized"
            )
        webhook_id = header(headers, HEADER_ID) or ""
        try:
            event = parse_event(body)
            user = event_user(event)
        except ValueError as err:
            return Respond(400, {"error": str(err)}, "webhook_bad")
        seen, prior = self.dedup.get(webhook_id)
        if seen:
            return Redeliver(prior)
        # Received by an earlier process (the durable log): a presence or connection event is
        # answered as a duplicate; a message is started again, and its turn's message-id key
        # makes that a replay of the stored reply, never a second run of the agent.
        earlier = self.dedup.seen_earlier(webhook_id)
        if event["type"] != "message":
            self.dedup.remember(webhook_id, None)
            answer = {"ok": True, "type": event["type"]}
            if earlier:
                return Respond(200, {**answer, "duplicate": True}, "webhook_duplicates")
            return Respond(200, answer, f"webhook_{event['type']}")
        message = event.get("message")
        if not isinstance(message, dict):
            return _bad("'message' must be an object with 'text'")
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            return _bad("'message.text' must be a non-empty string")
        try:
            trace = Trace.from_wire_or_none(message.get("trace"))
        except TraceError as err:
            return _bad(f"bad trace: {err}")
        refusal = room_refusal(
            str(event["room"]), user, room_granted=event.get(ROOM_GRANTED) is True
        )
        if refusal is not None:
            return Respond(403, {"error": refusal}, "webhook_refused_room")
        msg_id = message.get("id") if isinstance(message.get("id"), str) else None
        trace = trace or Trace.start(msg_id)
        msg_id = msg_id or trace.id
        trace.try_stamp("worker.recv", self.process, t_ns=t_recv_ns)
        raw_stream = message.get("stream")
        stream = raw_stream if isinstance(raw_stream, bool) else self.default_stream
        order = TurnOrder(str(event["room"]), user, msg_id, text, trace, stream)
        ack = {"ok": True, "accepted": msg_id} if self.ack_first else None
        stat = "webhook_redelivered" if earlier else "webhook_messages"
        return StartTurn(order, webhook_id, ack, stat)

    def _publish_proxy(
        self, headers: Mapping[str, str], body: bytes, t_recv_ns: int
    ) -> Decision[T]:
        """Centrifugo's publish proxy: allow the publication, answer the agent in the background."""
        if not proxy.api_key_matches(headers, self.api_key()):
            return Respond(
                401, {"error": "unsigned request: expected Standard Webhooks headers or X-API-Key"}
            )
        try:
            req = proxy.parse_publish(body)
        except ValueError as err:
            return _bad(str(err))
        data = req.data
        if not isinstance(data, dict) or data.get("type") != "message":
            return Respond(200, proxy.allow())  # not for the agent: let it through
        text = data.get("text")
        user = req.user or data.get("userId")
        if not isinstance(text, str) or not text.strip() or not gw.valid_user_id(user):
            return Respond(200, proxy.refuse())
        # No signed word from a realtime service here: a shared room is never taken on trust.
        refusal = room_refusal(req.channel, str(user), room_granted=False)
        if refusal is not None:
            return Respond(
                200, proxy.refuse(ERROR_PERMISSION_DENIED, refusal), "proxy_refused_room"
            )
        try:
            trace = Trace.from_wire_or_none(data.get("trace"))
        except TraceError:
            trace = None
        raw_id = data.get("id")
        msg_id = raw_id if isinstance(raw_id, str) and raw_id else new_msg_id()
        trace = trace or Trace.start(msg_id)
        trace.try_stamp("worker.recv", self.process, t_ns=t_recv_ns)
        order = TurnOrder(req.channel, str(user), msg_id, text, trace, self.default_stream)
        return StartTurn(order, None, proxy.allow(), "proxy_messages")
