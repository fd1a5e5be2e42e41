"""Channels, subscribers, presence and fan-out: the state shared by every endpoint.

The hub does no socket I/O itself: a subscriber is anything with ``client_id``, ``user`` and a
non-blocking ``send(text)`` (a client session queues the text for its writer task). A
publication is encoded once and the same string is handed to every subscriber.

Stamps happen here, in one place: ``realtime.publish`` (server API receipt, taken by the caller
and passed in) and ``realtime.deliver`` (just before the push is encoded and fanned out).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from travelagent.realtime.history import History, StoredPub
from travelagent.realtime.idempotency import IdempotencyCache
from travelagent.vocab import StampName
from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import Trace, TraceError

PROCESS = "realtime"


class Subscriber(Protocol):
    client_id: str
    user: str

    def send(self, text: str) -> None: ...


@dataclass(slots=True)
class Membership:
    subscriber: Subscriber
    join_leave: bool


@dataclass
class Counters:
    connections: int = 0
    connections_total: int = 0
    publications: int = 0
    client_publications: int = 0
    api_publications: int = 0
    deliveries: int = 0
    slow_disconnects: int = 0
    duplicate_publications: int = 0  # dropped by their idempotency key
    refused_tokens: int = 0
    connect_timeouts: int = 0
    refused_per_address: int = 0
    refused_per_user: int = 0


def trace_of(data: Any) -> Trace | None:
    """The trace inside a publication's data, or None (no trace, or one that is malformed)."""
    if not isinstance(data, dict) or "trace" not in data:
        return None
    try:
        return Trace.from_wire(data["trace"])
    except TraceError:
        return None  # a malformed trace is passed through untouched, never fatal


def stamp(trace: Trace, name: StampName, t_ns: int | None = None) -> None:
    """Stamp unless the trace is already full: a peer's oversized trace must not fail a publish."""
    trace.try_stamp(name, PROCESS, t_ns=t_ns)


def with_trace(data: dict[str, Any], trace: Trace) -> dict[str, Any]:
    return {**data, "trace": trace.to_wire()}


@dataclass
class Hub:
    history: History
    join_leave_namespaces: frozenset[str] = frozenset({cf.ROOM_NAMESPACE})
    channels: dict[str, dict[str, Membership]] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    started_s: float = field(default_factory=time.time)
    idempotency: IdempotencyCache = field(default_factory=IdempotencyCache)

    # --- subscriptions and presence ---------------------------------------------------------
    def is_subscribed(self, channel: str, client_id: str) -> bool:
        return client_id in self.channels.get(channel, {})

    def subscribe(self, sub: Subscriber, channel: str, *, join_leave: bool) -> None:
        members = self.channels.setdefault(channel, {})
        info = cf.client_info(sub.client_id, sub.user)
        self._fan_out(channel, cf.dumps(cf.join_push(channel, info)), join_leave_only=True)
        members[sub.client_id] = Membership(sub, join_leave)

    def unsubscribe(self, sub: Subscriber, channel: str) -> bool:
        members = self.channels.get(channel)
        if not members or members.pop(sub.client_id, None) is None:
            return False
        if not members:
            del self.channels[channel]
        else:
            info = cf.client_info(sub.client_id, sub.user)
            self._fan_out(channel, cf.dumps(cf.leave_push(channel, info)), join_leave_only=True)
        return True

    def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        return {
            cid: cf.client_info(cid, m.subscriber.user)
            for cid, m in self.channels.get(channel, {}).items()
        }

    def presence_stats(self, channel: str) -> dict[str, int]:
        members = self.channels.get(channel, {})
        users = {m.subscriber.user for m in members.values()}
        return {"num_clients": len(members), "num_users": len(users)}

    # --- publications ---------------------------------------------------------------------
    def publish(
        self,
        channel: str,
        data: Any,
        *,
        info: dict[str, Any] | None = None,
        api_recv_ns: int | None = None,
        trace: Trace | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, str]:
        """Store and fan out one publication; return its (offset, epoch).

        ``api_recv_ns`` is set for server-API publications: a trace in the data then gets
        ``realtime.publish`` at that time and ``realtime.deliver`` just before fan-out. A client
        publication arrives with ``trace`` already stamped ``realtime.recv`` by its session.
        A publication whose ``idempotency_key`` this channel has seen (``idempotency.py``) is
        neither stored nor delivered: the first one's (offset, epoch) is returned.
        """
        now_s = time.time()
        if idempotency_key is not None:
            first = self.idempotency.get(channel, idempotency_key, now_s=now_s)
            if first is not None:
                self.counters.duplicate_publications += 1
                return first
        if api_recv_ns is not None:
            trace = trace_of(data)
            if trace is not None:
                stamp(trace, "realtime.publish", api_recv_ns)
        if trace is not None and isinstance(data, dict):
            data = with_trace(data, trace)
        offset, epoch = self.history.add(
            channel, data, info, now_s=now_s, idempotency_key=idempotency_key
        )
        if idempotency_key is not None:
            stored = offset != 0 and self.history.stores_idempotency_keys
            self.idempotency.put(
                channel, idempotency_key, offset, epoch, now_s=now_s, stored=stored
            )
        if api_recv_ns is not None and trace is not None and isinstance(data, dict):
            stamp(trace, "realtime.deliver")
            data = with_trace(data, trace)
        self.counters.publications += 1
        if api_recv_ns is not None:
            self.counters.api_publications += 1
        else:
            self.counters.client_publications += 1
        if channel in self.channels:
            push = cf.dumps(cf.pub_push(channel, cf.publication(data, offset=offset, info=info)))
            self._fan_out(channel, push)
        return offset, epoch

    def _fan_out(self, channel: str, text: str, *, join_leave_only: bool = False) -> None:
        ns = cf.split_channel(channel)[0]
        forced = ns in self.join_leave_namespaces
        for m in list(self.channels.get(channel, {}).values()):
            if join_leave_only and not (m.join_leave or forced):
                continue
            m.subscriber.send(text)
            self.counters.deliveries += 1

    def history_read(
        self,
        channel: str,
        *,
        limit: int = 0,
        since: tuple[int, str] | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        pubs, offset, epoch = self.history.read(
            channel, now_s=time.time(), limit=limit, since=since, reverse=reverse
        )
        return {"publications": _wire(pubs), "offset": offset, "epoch": epoch}

    def info(self) -> dict[str, Any]:
        users = {m.subscriber.user for ms in self.channels.values() for m in ms.values()}
        return {
            "num_clients": self.counters.connections,
            "num_users": len(users),
            "num_channels": len(self.channels),
            "uptime": int(time.time() - self.started_s),
            **{k: v for k, v in vars(self.counters).items() if k != "connections"},
        }


def _wire(pubs: Iterable[StoredPub]) -> list[dict[str, Any]]:
    return [p.to_wire() for p in pubs]
