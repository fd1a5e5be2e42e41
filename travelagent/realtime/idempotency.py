"""Idempotent publishing, as Centrifugo's ``idempotency_key``; pure code (the clock is passed in).

A server-API publish may carry ``idempotency_key``. The first publish with a key in a channel
is stored and delivered, and its result (offset, epoch) remembered for ``ttl_s`` (Centrifugo
keeps them five minutes); a publish with the same key in the same channel within that time is
neither stored nor delivered and answers the first one's result. So a publisher whose answer
was lost can retry, and the channel still holds the publication once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

DEFAULT_TTL_S: Final = 300.0
MAX_KEY_CHARS: Final = 256


class IdempotencyCache:
    """(channel, key) -> the first publication's (offset, epoch), bounded by age and count."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, max_size: int = 100_000) -> None:
        self.ttl_s, self.max_size = ttl_s, max_size
        self._results: OrderedDict[tuple[str, str], tuple[float, int, str]] = OrderedDict()

    def get(self, channel: str, key: str, *, now_s: float) -> tuple[int, str] | None:
        self._expire(now_s)
        hit = self._results.get((channel, key))
        return None if hit is None else (hit[1], hit[2])

    def put(self, channel: str, key: str, offset: int, epoch: str, *, now_s: float) -> None:
        self._results[(channel, key)] = (now_s, offset, epoch)
        self._results.move_to_end((channel, key))
        while len(self._results) > self.max_size:
            self._results.popitem(last=False)

    def _expire(self, now_s: float) -> None:
        cutoff = now_s - self.ttl_s
        while self._results and next(iter(self._results.values()))[0] < cutoff:
            self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)
