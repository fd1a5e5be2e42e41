"""Bounds shared by the toolkit's servers: pure counting, and aiohttp glue imported lazily (so
the pure cores that count with it, such as the realtime session, import without aiohttp).

- ``ConnectionLimiter``: open connections per key: per remote address (gateway, realtime) and
  per user (the token's ``sub``, or the gateway's ``userId`` on an open loopback gateway).
- ``hold_user``/``release_user``: the gateway's per-user slot, held for one request.
- ``ConcurrencyLimit``: requests served at once by an internal API (agent host, link control),
  an aiohttp middleware answering 503 past the cap.

A bound refuses rather than grows without end; the caller counts each refusal in ``/healthz``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

# The header-read timeout of the internal APIs (agent host, link control): aiohttp's keep-alive
# timeout, which also closes a connection that has not finished its first request's headers.
# 75 s as on the worker and the realtime service: their callers keep pooled connections, and a
# shorter idle close races a request sent just as the server closes (more so through a link).
INTERNAL_KEEPALIVE_TIMEOUT_S = 75.0
# Requests an internal API serves at once; past it a request is answered 503 at once.
INTERNAL_MAX_CONCURRENT = 256


class ConnectionLimiter:
    """At most ``max_per_key`` open connections per key (an address, a user; 0: no limit)."""

    def __init__(self, max_per_key: int) -> None:
        self.max_per_key = max_per_key
        self.open: Counter[str] = Counter()

    @property
    def max_per_address(self) -> int:  # the name it had when addresses were the only key
        return self.max_per_key

    def acquire(self, key: str) -> bool:
        """Count one more connection for ``key``; False (nothing counted) if at the cap."""
        if self.max_per_key > 0 and self.open[key] >= self.max_per_key:
            return False
        self.open[key] += 1
        return True

    def release(self, key: str) -> None:
        if key not in self.open:
            return
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]


def hold_user(
    request: web.Request,
    key: web.RequestKey[tuple[ConnectionLimiter, str]],
    limiter: ConnectionLimiter,
    user: str | None,
) -> bool:
    """Take a slot for ``user`` for the life of ``request`` (False: the user is at the cap);
    ``release_user(request, key)`` gives it back, whichever way the request ends. None (an open
    gateway socket that names its user per frame) holds no slot."""
    if user is None:
        return True
    if not limiter.acquire(user):
        return False
    request[key] = (limiter, user)
    return True


def release_user(request: web.Request, key: web.RequestKey[tuple[ConnectionLimiter, str]]) -> None:
    slot = request.pop(key, None)
    if slot is not None:
        slot[0].release(slot[1])


class ConcurrencyLimit:
    """At most ``max_concurrent`` requests in a handler at once (0: no limit); ``refused``
    counts those answered 503 instead."""

    def __init__(self, max_concurrent: int = INTERNAL_MAX_CONCURRENT) -> None:
        self.max_concurrent = max_concurrent
        self.active = 0
        self.refused = 0
        self.refused_inflight = 0  # messages refused on a socket already at its in-flight cap

    def middleware(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def limit(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            if request.path == "/healthz":  # always answers, so the cap can be seen
                return await handler(request)
            if self.max_concurrent > 0 and self.active >= self.max_concurrent:
                self.refused += 1
                raise web.HTTPServiceUnavailable(
                    text='{"error": "too many requests in progress"}',
                    content_type="application/json",
                    headers={"Retry-After": "1"},
                )
            self.active += 1
            try:
                return await handler(request)
            finally:
                self.active -= 1

        return limit
