"""A bearer token in front of an internal HTTP API (the agent host, the link control API).

Every route but ``/healthz`` needs ``Authorization: Bearer <token>``; the comparison takes the
same time whatever the token, so it cannot be guessed byte by byte. The token is generated
per topology by the launcher (``TRAVELAGENT_AGENT_HOST_TOKEN``,
``TRAVELAGENT_LINK_CONTROL_TOKEN``) and given to the processes that call the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from travelagent.wire import secret

OPEN_PATHS = frozenset({"/healthz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_matches(headers: Mapping[str, str], token: str) -> bool:
    """Whether ``headers`` carry ``Authorization: Bearer <token>`` (constant-time compare)."""
    auth = headers.get("Authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return secret.matches(given, token)


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def require_bearer(token: str, *, refused: Callable[[], None] | None = None) -> Middleware:
    """An aiohttp middleware answering 401 unless the request carries ``token``; ``refused``
    is called for each refusal (to count it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS and not bearer_matches(request.headers, token):
            if refused is not None:
                refused()
            raise web.HTTPUnauthorized(
                text='{"error": "Authorization: Bearer <token> required"}',
                content_type="application/json",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return middleware
