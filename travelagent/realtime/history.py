"""Channel history: bounded streams with offsets and an epoch; pure code (the clock is passed in).

Each channel whose namespace keeps history owns a stream: an epoch (a random string naming this
incarnation of the stream), the offset of its last publication, and at most ``size`` recent
publications younger than ``ttl_s``. Offsets grow by one per publication and never repeat
within an epoch. A client that remembers ``(offset, epoch)`` can recover what it missed exactly
when the epoch is unchanged and nothing after its offset has been pruned.

Streams themselves are bounded too: a stream unused (no publication, read or recovery) for
``stream_ttl_s`` is evicted, and past ``max_streams`` the least recently used one is; a client
that then recovers sees a new epoch, as after a restart. Each eviction is counted.

``SqliteHistory`` (history_sqlite.py) writes the same streams through to a database so that
epochs and publications survive a restart.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from travelagent.wire.centrifugo import split_channel


@dataclass(frozen=True)
class HistoryPolicy:
    size: int = 100
    ttl_s: float = 300.0


DEFAULT_POLICIES: dict[str, HistoryPolicy] = {
    "travel": HistoryPolicy(size=100, ttl_s=300.0),
    "room": HistoryPolicy(size=100, ttl_s=300.0),
}


@dataclass
class StoredPub:
    offset: int
    data: Any
    info: dict[str, Any] | None
    t_s: float

    def to_wire(self) -> dict[str, Any]:
        pub: dict[str, Any] = {"data": self.data, "offset": self.offset}
        if self.info:
            pub["info"] = self.info
        return pub


@dataclass(slots=True)
class Stream:
    """One channel's history. ``pubs`` is an empty tuple until the first publication (a deque
    from then on): a channel subscribed to but never published on costs no deque (about 0.8 KiB
    each, with one channel per idle subscriber)."""

    epoch: str
    top_offset: int = 0
    pubs: deque[StoredPub] | tuple[()] = ()
    used_s: float = 0.0

    def kept(self) -> deque[StoredPub]:
        """The publications, as a deque to append to or trim."""
        if not isinstance(self.pubs, deque):
            self.pubs = deque()
        return self.pubs


@dataclass
class Recovery:
    recovered: bool
    offset: int
    epoch: str
    publications: list[StoredPub]


def new_epoch() -> str:
    return uuid.uuid4().hex[:8]


class History:
    """In-memory history for every channel whose namespace has a policy."""

    def __init__(
        self,
        policies: Mapping[str, HistoryPolicy] | None = None,
        *,
        max_streams: int = 100_000,
        stream_ttl_s: float = 3600.0,
    ) -> None:
        self.policies = dict(DEFAULT_POLICIES if policies is None else policies)
        # Least recently used first.
        self.streams: OrderedDict[str, Stream] = OrderedDict()
        self.max_streams, self.stream_ttl_s = max_streams, stream_ttl_s
        self.evicted_streams = 0

    def policy(self, channel: str) -> HistoryPolicy | None:
        p = self.policies.get(split_channel(channel)[0])
        return p if p is not None and p.size > 0 and p.ttl_s > 0 else None

    # Whether ``add`` stores an idempotency key with its publication, in one transaction.
    stores_idempotency_keys = False

    # Hooks for a persistent subclass.
    def _created(self, channel: str, stream: Stream) -> None:
        pass

    def _appended(
        self, channel: str, stream: Stream, pub: StoredPub, idempotency_key: str | None
    ) -> None:
        pass

    def _pruned(self, channel: str, below_offset: int) -> None:
        pass

    def _evicted(self, channel: str) -> None:
        pass

    def stream(self, channel: str, now_s: float | None = None) -> Stream:
        """The channel's stream, created if needed; ``now_s`` marks it used (and evicts)."""
        s = self.streams.get(channel)
        if s is None:
            s = self.streams[channel] = Stream(epoch=new_epoch())
            self._created(channel, s)
        if now_s is not None:
            s.used_s = now_s
            self.streams.move_to_end(channel)
            self.evict(now_s, keep=channel)
        return s

    def evict(self, now_s: float, *, keep: str = "") -> int:
        """Drop streams unused for ``stream_ttl_s`` and those past ``max_streams`` (least
        recently used first); return how many."""
        dropped = 0
        for channel in list(self.streams):  # oldest first; stop at the first one kept
            s = self.streams[channel]
            over = 0 < self.max_streams < len(self.streams)
            stale = self.stream_ttl_s > 0 and s.used_s < now_s - self.stream_ttl_s
            if channel == keep or not (over or stale):
                break
            del self.streams[channel]
            self._evicted(channel)
            dropped += 1
        self.evicted_streams += dropped
        return dropped

    def _prune(self, channel: str, s: Stream, policy: HistoryPolicy, now_s: float) -> None:
        popped = 0
        if not s.pubs:
            return
        pubs = s.kept()
        while len(pubs) > policy.size:
            pubs.popleft()
            popped += 1
        while pubs and pubs[0].t_s < now_s - policy.ttl_s:
            pubs.popleft()
            popped += 1
        if popped:
            self._pruned(channel, s.pubs[0].offset if s.pubs else s.top_offset + 1)

    def add(
        self,
        channel: str,
        data: Any,
        info: dict[str, Any] | None,
        *,
        now_s: float,
        idempotency_key: str | None = None,
    ) -> tuple[int, str]:
        """Append a publication; return its (offset, epoch). Offset 0 means no history kept.
        A persistent history (``stores_idempotency_keys``) stores ``idempotency_key`` with
        the publication, so a crash cannot keep one without the other."""
        policy = self.policy(channel)
        if policy is None:
            return 0, ""
        s = self.stream(channel, now_s)
        s.top_offset += 1
        pub = StoredPub(offset=s.top_offset, data=data, info=info, t_s=now_s)
        try:
            self._appended(channel, s, pub, idempotency_key)
        except BaseException:
            s.top_offset -= 1  # not stored: memory stays as the file is
            raise
        s.kept().append(pub)
        self._prune(channel, s, policy, now_s)
        return s.top_offset, s.epoch

    def position(self, channel: str, *, now_s: float) -> tuple[int, str]:
        if self.policy(channel) is None:
            return 0, ""
        s = self.stream(channel, now_s)
        return s.top_offset, s.epoch

    def read(
        self,
        channel: str,
        *,
        now_s: float,
        limit: int = 0,
        since: tuple[int, str] | None = None,
        reverse: bool = False,
    ) -> tuple[list[StoredPub], int, str]:
        """Publications (after ``since`` if given), newest last unless ``reverse``.

        ``limit`` 0 returns only the position (Centrifugo's convention); -1 means no limit.
        """
        policy = self.policy(channel)
        if policy is None:
            return [], 0, ""
        s = self.stream(channel, now_s)
        self._prune(channel, s, policy, now_s)
        pubs = list(s.pubs)
        if since is not None and since[1] == s.epoch:
            pubs = [p for p in pubs if p.offset > since[0]]
        if reverse:
            pubs.reverse()
        if limit >= 0:
            pubs = pubs[:limit]
        return pubs, s.top_offset, s.epoch

    def recover(self, channel: str, offset: int, epoch: str, *, now_s: float) -> Recovery:
        """What a client at ``(offset, epoch)`` missed, and whether that is all of it."""
        policy = self.policy(channel)
        if policy is None:
            return Recovery(False, 0, "", [])
        s = self.stream(channel, now_s)
        self._prune(channel, s, policy, now_s)
        if epoch != s.epoch or offset > s.top_offset:
            return Recovery(False, s.top_offset, s.epoch, [])
        missed = [p for p in s.pubs if p.offset > offset]
        complete = offset == s.top_offset or (bool(missed) and missed[0].offset == offset + 1)
        return Recovery(complete, s.top_offset, s.epoch, missed if complete else [])

    def close(self) -> None:
        pass
