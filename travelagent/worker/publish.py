"""``publish_to_realtime``: the worker's way back to clients on the realtime path.

Three modes, the note's optimizations made switchable:

- ``http-new``: a new TCP connection for every publish (keep-alive off), as an unpooled client
  does; each publish pays connection set-up on the worker→realtime link.
- ``http-pooled``: one keep-alive httpx client; connections are reused.
- ``ws-persistent``: one server-publisher WebSocket, commands pipelined on it, reconnecting with
  backoff when it drops.

The body is Centrifugo's server API publish: ``{"channel": ..., "data": ...}`` to
``{realtime_url}/api/publish`` with ``X-API-Key``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import httpx

from travelagent.config import API_KEY_ENV, secret
from travelagent.vocab import PublishMode
from travelagent.wire import server_api as api


class PublishError(RuntimeError):
    """The realtime service did not accept a publication."""


class Publisher(Protocol):
    mode: str

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def _check_reply(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code != 200:
        raise PublishError(f"realtime API answered {resp.status_code}: {resp.text[:200]}")
    try:
        body = resp.json()
    except json.JSONDecodeError:
        raise PublishError("realtime API answered with invalid JSON") from None
    if not isinstance(body, dict):
        raise PublishError("realtime API answered with a non-object")
    if body.get("error"):
        raise PublishError(f"realtime API error: {body['error']}")
    result = body.get("result", {})
    return result if isinstance(result, dict) else {}


class HttpPublisher:
    """``http-new`` (keep-alive off) or ``http-pooled`` (keep-alive on), one httpx client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        pooled: bool,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.mode = "http-pooled" if pooled else "http-new"
        limits = (
            httpx.Limits(max_connections=200, max_keepalive_connections=100)
            if pooled
            else httpx.Limits(max_connections=200, max_keepalive_connections=0)
        )
        headers = api.api_key_headers(api_key)
        if not pooled:
            headers["Connection"] = "close"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            limits=limits,
            timeout=timeout_s,
            transport=transport,  # a seam for tests (e.g. one that loses answers)
        )

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        params = api.publish_params(channel, data, idempotency_key=idempotency_key)
        try:
            resp = await self._client.post("/api/publish", json=params)
        except httpx.HTTPError as err:
            raise PublishError(f"publish to realtime failed: {err!r}") from err
        return _check_reply(resp)

    async def aclose(self) -> None:
        await self._client.aclose()


class WsPublisher:
    """``ws-persistent``: the realtime service's server-publisher socket."""

    mode = "ws-persistent"

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float) -> None:
        from travelagent.client.publisher import PublisherClient

        ws_url = base_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://")
        self._client = PublisherClient(ws_url + api.SOCKET_PATH, api_key)
        self._timeout_s = timeout_s
        self._connected = False
        self._connect_lock = asyncio.Lock()

    async def publish(
        self, channel: str, data: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        if not self._connected:
            async with self._connect_lock:
                if not self._connected:
                    await self._client.connect()
                    self._connected = True
        try:
            # A timeout scope, not wait_for: no extra task per publish on the hot path.
            async with asyncio.timeout(self._timeout_s):
                return await self._client.publish(channel, data, idempotency_key=idempotency_key)
        except TimeoutError:
            raise PublishError(f"publish over the publisher socket timed out ({channel})") from None
        except Exception as err:
            if isinstance(err, PublishError):
                raise
            raise PublishError(f"publish over the publisher socket failed: {err}") from err

    async def aclose(self) -> None:
        await self._client.aclose()


def make_publisher(
    mode: PublishMode, base_url: str, *, api_key: str | None = None, timeout_s: float = 10.0
) -> Publisher:
    key = api_key or secret(API_KEY_ENV)
    if mode == "http-new":
        return HttpPublisher(base_url, key, pooled=False, timeout_s=timeout_s)
    if mode == "http-pooled":
        return HttpPublisher(base_url, key, pooled=True, timeout_s=timeout_s)
    if mode == "ws-persistent":
        return WsPublisher(base_url, key, timeout_s=timeout_s)
    raise ValueError(f"unknown publish mode {mode!r}")


async def publish_to_realtime(
    publisher: Publisher, channel: str, data: Any, *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Publish one agent_response (or any data) to ``channel``; raise PublishError on failure.
    With ``idempotency_key``, a retry of a publish whose answer was lost publishes once."""
    return await publisher.publish(channel, data, idempotency_key=idempotency_key)
