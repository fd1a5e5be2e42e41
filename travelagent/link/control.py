"""A set of links in one process, their fault schedule, and the HTTP control API.

Routes (aiohttp, JSON):
- ``GET /healthz``: ``{"status": "ok", "links": [names], "refused_unauthorized": N,
  "refused_busy": N}``; every other route needs ``Authorization: Bearer <token>``
  (``travelagent.http_auth``). Bounds (``travelagent.limits``): bodies past
  ``MAX_CONTROL_BODY_BYTES`` get 413, requests past ``max_concurrent`` at once get 503, and a
  connection that has not finished its headers is closed after ``keepalive_timeout_s``.
- ``GET /links``: every link's listen/upstream address, shape, faults and counters
- ``GET /links/{name}``: one link
- ``POST /links/{name}/faults``: e.g. ``{"reset": true}``, ``{"fault": "refuse", "on": false}``,
  ``{"slow_close_ms": 3000}``, ``{"clear": true}``
- ``POST /links/{name}/shape``: e.g. ``{"delay_ms": 25, "jitter_ms": 2}``
- ``GET /links/{name}/records``: recorded chunks (arrival, scheduled and delivery, monotonic ns)
- ``POST /links/{name}/records``: ``{"recording": true|false, "clear": true|false}``
- ``POST /schedule/start``: start the scenario's fault schedule now (t = 0); optional body
  ``{"faults": [...]}`` in the scenario's ``[[faults]]`` form replaces it
- ``GET /schedule``: the events and whether each has fired
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from travelagent.http_auth import require_bearer
from travelagent.limits import INTERNAL_KEEPALIVE_TIMEOUT_S, ConcurrencyLimit
from travelagent.link.faults import FaultError, FaultEvent, expand_schedule
from travelagent.link.proxy import Link
from travelagent.link.schedule import ShapeError

# A control request is a small JSON object (a fault schedule is the largest).
MAX_CONTROL_BODY_BYTES = 64 * 1024
CONTROL_MAX_CONCURRENT = 64


class LinkSet:
    """Links served by one process, plus the fault schedule that acts on them."""

    def __init__(self, links: list[Link], faults: list[dict[str, Any]] | None = None) -> None:
        self.links = {link.name: link for link in links}
        self.events: list[FaultEvent] = expand_schedule(faults or [])
        self._check_events(self.events)
        self.fired: list[bool] = [False] * len(self.events)
        self._schedule_task: asyncio.Task[None] | None = None

    def _check_events(self, events: list[FaultEvent]) -> None:
        for event in events:
            if event.link not in self.links:
                valid = ", ".join(sorted(self.links))
                raise FaultError(
                    f"fault schedule names unknown link {event.link!r}; links: {valid}"
                )

    async def start(self) -> None:
        for link in self.links.values():
            await link.start()

    async def stop(self) -> None:
        if self._schedule_task is not None:
            self._schedule_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule_task
        for link in self.links.values():
            await link.stop()

    def start_schedule(self, faults: list[dict[str, Any]] | None = None) -> int:
        if faults is not None:
            events = expand_schedule(faults)
            self._check_events(events)
            self.events = events
        if self._schedule_task is not None:
            self._schedule_task.cancel()
        self.fired = [False] * len(self.events)
        self._schedule_task = asyncio.get_running_loop().create_task(self._run_schedule())
        return len(self.events)

    async def _run_schedule(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, event in enumerate(self.events):
            await asyncio.sleep(max(0.0, t0 + event.at_s - loop.time()))
            link = self.links[event.link]
            await link.set_faults(
                link.faults.with_fault(event.fault, event.on, slow_close_ms=event.slow_close_ms)
            )
            self.fired[i] = True

    def schedule_status(self) -> list[dict[str, Any]]:
        return [
            {"at_s": e.at_s, "link": e.link, "fault": e.fault, "on": e.on, "fired": fired}
            for e, fired in zip(self.events, self.fired, strict=True)
        ]


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not valid JSON: {err}"}),
            content_type="application/json",
        ) from err


def build_app(
    links: LinkSet, *, token: str | None = None, max_concurrent: int = CONTROL_MAX_CONCURRENT
) -> web.Application:
    """The control API over ``links``; callers need ``token`` (default:
    ``TRAVELAGENT_LINK_CONTROL_TOKEN``, or its development value); at most ``max_concurrent``
    requests are served at once (0: no limit)."""
    from travelagent.config import LINK_CONTROL_TOKEN_ENV, secret

    refused = [0]
    busy = ConcurrencyLimit(max_concurrent)

    def count() -> None:
        refused[0] += 1

    def find(request: web.Request) -> Link:
        name = request.match_info["name"]
        if name not in links.links:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no link {name!r}; links: {sorted(links.links)}"}),
                content_type="application/json",
            )
        return links.links[name]

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "links": sorted(links.links),
                "refused_unauthorized": refused[0],
                "refused_busy": busy.refused,
            }
        )

    async def list_links(request: web.Request) -> web.Response:
        return web.json_response({n: link.snapshot() for n, link in links.links.items()})

    async def get_link(request: web.Request) -> web.Response:
        return web.json_response(find(request).snapshot())

    async def post_faults(request: web.Request) -> web.Response:
        link = find(request)
        body = await _json_body(request)
        try:
            faults = link.faults.updated(body)
        except FaultError as err:
            return _error(400, str(err))
        try:
            await link.set_faults(faults)
        except OSError as err:
            return _error(409, f"could not listen again on {link.listen_port}: {err}")
        return web.json_response(link.snapshot())

    async def post_shape(request: web.Request) -> web.Response:
        link = find(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _error(400, "shape request must be a JSON object")
        try:
            link.set_shape(link.shape.updated(body))
        except (ShapeError, TypeError) as err:
            return _error(400, str(err))
        return web.json_response(link.snapshot())

    async def get_records(request: web.Request) -> web.Response:
        link = find(request)
        return web.json_response({"records": [r.to_dict() for r in link.records]})

    async def post_records(request: web.Request) -> web.Response:
        link = find(request)
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"recording", "clear"}:
            return _error(400, "records request takes {'recording': bool, 'clear': bool}")
        if body.get("clear"):
            link.records.clear()
        if "recording" in body:
            link.recording = bool(body["recording"])
        return web.json_response(link.snapshot())

    async def start_schedule(request: web.Request) -> web.Response:
        faults = None
        if request.can_read_body:
            body = await _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("faults", []), list):
                return _error(400, "schedule request takes {'faults': [...]}")
            faults = body.get("faults")
        try:
            count = links.start_schedule(faults)
        except (FaultError, KeyError, TypeError, ValueError) as err:
            return _error(400, f"bad fault schedule: {err}")
        return web.json_response({"events": count})

    async def get_schedule(request: web.Request) -> web.Response:
        return web.json_response({"events": links.schedule_status()})

    app = web.Application(
        client_max_size=MAX_CONTROL_BODY_BYTES,
        middlewares=[
            require_bearer(token or secret(LINK_CONTROL_TOKEN_ENV), refused=count),
            busy.middleware(),
        ],
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/links", list_links)
    app.router.add_get("/links/{name}", get_link)
    app.router.add_post("/links/{name}/faults", post_faults)
    app.router.add_post("/links/{name}/shape", post_shape)
    app.router.add_get("/links/{name}/records", get_records)
    app.router.add_post("/links/{name}/records", post_records)
    app.router.add_post("/schedule/start", start_schedule)
    app.router.add_get("/schedule", get_schedule)
    return app


async def serve_control(
    links: LinkSet,
    host: str,
    port: int,
    *,
    token: str | None = None,
    max_concurrent: int = CONTROL_MAX_CONCURRENT,
    keepalive_timeout_s: float = INTERNAL_KEEPALIVE_TIMEOUT_S,
) -> web.AppRunner:
    runner = web.AppRunner(
        build_app(links, token=token, max_concurrent=max_concurrent),
        access_log=None,
        keepalive_timeout=keepalive_timeout_s,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
