"""Idempotent publishing, as Centrifugo's ``idempotency_key``; pure code (the clock is passed in).

A server-API publish may carry ``idempotency_key``. The first publish with a key in a channel
is stored and delivered, and its result (offset, epoch) remembered for ``ttl_s`` (Centrifugo
keeps them five minutes); a publish with the same key in the same channel within that time is
neither stored nor delivered and answers the first one's result. So a publisher whose answer
was lost can retry, and the channel still holds the publication once.

``SqliteIdempotencyCache`` (the service uses it with ``history = "sqlite"``) writes every key
through to the service's SQLite file and reads the unexpired ones back at start, so a publish
retried after the service restarted is still answered, not stored twice. Its keys are kept
``DURABLE_TTL_S`` by default: longer than the webhook timestamp tolerance (300 s) and as long as
the worker keeps webhook ids, so no redelivery the worker still accepts outlives its key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Final

from travelagent.sqlite import open_db

DEFAULT_TTL_S: Final = 300.0
DURABLE_TTL_S: Final = 900.0
IDEMPOTENCY_MAX_KEYS: Final = 100_000
# Keys held in memory when the file keeps them all (``SqliteIdempotencyCache``): a retried
# publish comes seconds after its first, so the newest keys answer nearly every retry.
DURABLE_MEMORY_KEYS: Final = 4096
# The default of ``--idempotency-max-keys`` when set (``make soak`` lowers the cap this way so
# that the cache is full within the soak's warm-up, and its slope measures what else grows).
MAX_KEYS_ENV: Final = "TRAVELAGENT_IDEMPOTENCY_MAX_KEYS"
MAX_KEY_CHARS: Final = 256


def _entry_key(channel: str, key: str) -> str:
    """One string for (channel, key), unambiguous (the channel's length first): one object a
    key instead of a tuple and two strings, about 100 B less a key (docs/chaos.md)."""
    return f"{len(channel)}:{channel}{key}"


class IdempotencyCache:
    """(channel, key) -> the first publication's (offset, epoch), bounded by age and count.

    Its memory is bounded by ``max_size``: about 300 B of Python objects a key (measured with
    tracemalloc, keys of 40 characters), so 30 MiB at the default 100,000 keys.
    """

    def __init__(
        self, *, ttl_s: float = DEFAULT_TTL_S, max_size: int = IDEMPOTENCY_MAX_KEYS
    ) -> None:
        if max_size < 1:
            raise ValueError("the idempotency cache must hold at least one key")
        self.ttl_s, self.max_size = ttl_s, max_size
        self._results: OrderedDict[str, tuple[float, int, str]] = OrderedDict()

    def get(self, channel: str, key: str, *, now_s: float) -> tuple[int, str] | None:
        self._expire(now_s)
        hit = self._results.get(_entry_key(channel, key))
        return None if hit is None else (hit[1], hit[2])

    def put(
        self, channel: str, key: str, offset: int, epoch: str, *, now_s: float, stored: bool = False
    ) -> None:
        """Remember ``key``'s result; ``stored``: its durable row was already written (with the
        publication, by a persistent history)."""
        k = _entry_key(channel, key)
        self._results[k] = (now_s, offset, epoch)
        self._results.move_to_end(k)
        while len(self._results) > self.max_size:
            self._results.popitem(last=False)

    def _expire(self, now_s: float) -> None:
        cutoff = now_s - self.ttl_s
        while self._results and next(iter(self._results.values()))[0] < cutoff:
            self._results.popitem(last=False)

    def __len__(self) -> int:
        return len(self._results)


IDEMPOTENCY_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS idempotency (
  channel TEXT NOT NULL, key TEXT NOT NULL, offset INTEGER NOT NULL, epoch TEXT NOT NULL,
  t_s REAL NOT NULL, PRIMARY KEY (channel, key)
);
CREATE INDEX IF NOT EXISTS idempotency_t ON idempotency (t_s);
"""
# Expired rows are deleted once every this many puts (and at start).
_SWEEP_EVERY = 1000


class SqliteIdempotencyCache(IdempotencyCache):
    """The cache, written through to SQLite (table ``idempotency``): memory holds the newest
    ``max_size`` keys, the file every key for the ttl, and a key not in memory is looked up in
    the file. The newest are read back at start.

    A key is written in the transaction of the publication it names when the history is
    persistent (``SqliteHistory``, the same file: ``put(..., stored=True)``), else as one
    autocommit ``INSERT`` at ``synchronous=NORMAL`` (it survives a crash of the process). The
    wall clock dates the keys, so ages compare across restarts.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_s: float = DURABLE_TTL_S,
        max_size: int = IDEMPOTENCY_MAX_KEYS,
        now_s: float | None = None,
    ) -> None:
        super().__init__(ttl_s=ttl_s, max_size=max_size)
        self.path = str(path)
        self.db = open_db(path, IDEMPOTENCY_SCHEMA)
        self._puts = 0
        self.disk_hits = 0  # keys found in the file after memory let them go
        cutoff = (time.time() if now_s is None else now_s) - ttl_s
        self.db.execute("DELETE FROM idempotency WHERE t_s < ?", (cutoff,))
        rows = self.db.execute(
            "SELECT channel, key, offset, epoch, t_s FROM idempotency ORDER BY t_s DESC LIMIT ?",
            (max_size,),
        ).fetchall()
        for channel, key, offset, epoch, t_s in reversed(rows):
            self._results[_entry_key(channel, key)] = (t_s, offset, epoch)
        self.loaded = len(rows)

    def get(self, channel: str, key: str, *, now_s: float) -> tuple[int, str] | None:
        hit = super().get(channel, key, now_s=now_s)
        if hit is not None:
            return hit
        # Not among the newest in memory: the file keeps every key for the ttl. A point read by
        # primary key, on the loop like every other statement of this service's SQLite.
        row = self.db.execute(
            "SELECT offset, epoch FROM idempotency WHERE channel = ? AND key = ? AND t_s >= ?",
            (channel, key, now_s - self.ttl_s),
        ).fetchone()
        if row is None:
            return None
        self.disk_hits += 1
        return int(row[0]), str(row[1])

    def put(
        self, channel: str, key: str, offset: int, epoch: str, *, now_s: float, stored: bool = False
    ) -> None:
        super().put(channel, key, offset, epoch, now_s=now_s)
        if not stored:
            self.db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                (channel, key, offset, epoch, now_s),
            )
        self._puts += 1
        if self._puts % _SWEEP_EVERY == 0:
            self.db.execute("DELETE FROM idempotency WHERE t_s < ?", (now_s - self.ttl_s,))

    def close(self) -> None:
        self.db.close()
