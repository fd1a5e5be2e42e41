"""The realtime service as an aiohttp application.

Usage::

    config = RealtimeConfig.from_env(port=8000, history="sqlite", db_path="rt.sqlite")
    app = create_app(config)
    web.run_app(app, host=config.host, port=config.port)

Routes: ``/connection/websocket`` (clients), ``POST /api/<method>`` (server HTTP API),
``GET /api/ws`` (publisher socket), ``GET /healthz``.
"""

from __future__ import annotations

from aiohttp import web

from travelagent.monitor import LoopLagMonitor, attach_loop_lag
from travelagent.realtime.api import handle_api, handle_publisher_socket
from travelagent.realtime.client_ws import handle_client_websocket
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.service import SERVICE, RealtimeService

__all__ = ["RealtimeConfig", "RealtimeService", "create_app"]

_LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)


async def handle_healthz(request: web.Request) -> web.Response:
    service: RealtimeService = request.app[SERVICE]
    return web.json_response(
        {
            "ok": True,
            "service": "realtime",
            **service.stats(),
            "loop_lag": request.app[_LOOP_LAG].summary(),
        }
    )


def create_app(config: RealtimeConfig) -> web.Application:
    service = RealtimeService(config)
    app = web.Application(client_max_size=max(config.max_frame_bytes, 1 << 20))
    app[SERVICE] = service
    app[_LOOP_LAG] = attach_loop_lag(app)
    app.router.add_get("/connection/websocket", handle_client_websocket)
    app.router.add_get("/api/ws", handle_publisher_socket)
    app.router.add_post("/api/{method}", handle_api)
    app.router.add_get("/healthz", handle_healthz)
    app.on_startup.append(service.start)
    app.on_shutdown.append(service.close_sockets)
    app.on_cleanup.append(service.stop)
    return app
