"""The server API: ``POST /api/<method>`` (Centrifugo's HTTP API) and the publisher socket.

Both call ``call_api(service, method, params, recv_ns)``, so a publish through HTTP and one
through the socket behave the same. Authentication is the ``X-API-Key`` header, checked before
anything else (and before the WebSocket upgrade).

Publisher socket (``GET /api/ws``): each text frame holds newline-separated commands
``{"id": <int>, "method": "publish", "params": {...}}``; each gets ``{"id": .., "result": {..}}``
or ``{"id": .., "error": {"code": .., "message": ..}}``. Replies go out as soon as each
command is done, several per frame when they are ready together.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from travelagent.realtime.service import SERVICE, RealtimeService
from travelagent.wire import centrifugo as cf
from travelagent.wire.trace import now_ns

API_METHODS = ("publish", "broadcast", "presence", "presence_stats", "history", "info")
MAX_BROADCAST_CHANNELS = 1000


def _data(params: dict[str, Any]) -> Any:
    if "data" not in params:
        raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: data is required")
    return params["data"]


def _publish(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    channel = cf.channel_param(params)
    offset, epoch = service.hub.publish(channel, _data(params), api_recv_ns=recv_ns)
    return {"offset": offset, "epoch": epoch} if offset else {}


def _broadcast(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    channels = params.get("channels")
    if (
        not isinstance(channels, list)
        or not channels
        or len(channels) > MAX_BROADCAST_CHANNELS
        or not all(isinstance(c, str) and c for c in channels)
    ):
        raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: channels must be a list of names")
    data = _data(params)
    responses = []
    for channel in channels:
        # Each channel gets its own copy: stamps are per delivery path.
        body = json.loads(json.dumps(data)) if isinstance(data, dict | list) else data
        responses.append({"result": _publish(service, {"channel": channel, "data": body}, recv_ns)})
    return {"responses": responses}


def _presence(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    return {"presence": service.hub.presence(cf.channel_param(params))}


def _presence_stats(
    service: RealtimeService, params: dict[str, Any], recv_ns: int
) -> dict[str, Any]:
    return service.hub.presence_stats(cf.channel_param(params))


def _history(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    req = cf.parse_history(params)
    if service.hub.history.policy(req.channel) is None:
        raise cf.ReplyError(cf.ERROR_NOT_AVAILABLE)
    return service.hub.history_read(
        req.channel, limit=req.limit, since=req.since, reverse=req.reverse
    )


def _info(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    return {"nodes": [{"uid": service.node_id, "name": "travelagent-realtime", **service.stats()}]}


_HANDLERS: dict[str, Callable[[RealtimeService, dict[str, Any], int], dict[str, Any]]] = {
    "publish": _publish,
    "broadcast": _broadcast,
    "presence": _presence,
    "presence_stats": _presence_stats,
    "history": _history,
    "info": _info,
}


def call_api(service: RealtimeService, method: str, params: Any, recv_ns: int) -> dict[str, Any]:
    handler = _HANDLERS.get(method)
    if handler is None:
        raise cf.ReplyError(cf.ERROR_METHOD_NOT_FOUND, f"method not found: {method}")
    if not isinstance(params, dict):
        raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: params must be a JSON object")
    return handler(service, params, recv_ns)


def _authorized(service: RealtimeService, request: web.Request) -> bool:
    key = request.headers.get("X-API-Key", "")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("apikey "):
        key = auth[7:].strip()  # Centrifugo's older spelling
    return bool(key) and hmac.compare_digest(key.encode(), service.config.api_key.encode())


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def handle_api(request: web.Request) -> web.Response:
    recv_ns = now_ns()
    service: RealtimeService = request.app[SERVICE]
    if not _authorized(service, request):
        return _error(401, cf.ERROR_UNAUTHORIZED, "unauthorized: missing or wrong X-API-Key")
    method = request.match_info["method"]
    raw = await request.read()
    try:
        params = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return _error(400, cf.ERROR_BAD_REQUEST, "bad request: body is not valid JSON")
    try:
        result = call_api(service, method, params, recv_ns)
    except cf.ReplyError as err:
        status = {cf.ERROR_BAD_REQUEST: 400, cf.ERROR_METHOD_NOT_FOUND: 404}.get(err.code, 200)
        return web.json_response({"error": err.to_wire()}, status=status)
    return web.json_response({"result": result})


def _socket_reply(service: RealtimeService, line: str, recv_ns: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return {"id": 0, "error": {"code": cf.ERROR_BAD_REQUEST, "message": "invalid JSON"}}
    if not isinstance(obj, dict):
        return {"id": 0, "error": {"code": cf.ERROR_BAD_REQUEST, "message": "not an object"}}
    cmd_id = obj.get("id", 0)
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        cmd_id = 0
    method = obj.get("method")
    try:
        if not isinstance(method, str):
            raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: method must be a string")
        return {"id": cmd_id, "result": call_api(service, method, obj.get("params", {}), recv_ns)}
    except cf.ReplyError as err:
        return {"id": cmd_id, "error": err.to_wire()}


async def handle_publisher_socket(request: web.Request) -> web.StreamResponse:
    service: RealtimeService = request.app[SERVICE]
    if not _authorized(service, request):
        return _error(401, cf.ERROR_UNAUTHORIZED, "unauthorized: missing or wrong X-API-Key")
    ws = web.WebSocketResponse(
        max_msg_size=max(service.config.max_frame_bytes, 1 << 20), compress=False
    )
    await ws.prepare(request)
    service.publisher_sockets += 1
    service.sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                await ws.send_str(
                    cf.dumps({"id": 0, "error": {"code": 107, "message": "text frames only"}})
                )
                continue
            recv_ns = now_ns()
            replies = [
                _socket_reply(service, line, recv_ns)
                for line in msg.data.split("\n")
                if line.strip()
            ]
            if replies:
                await ws.send_str(cf.encode(replies))
    finally:
        service.sockets.discard(ws)
        service.publisher_sockets -= 1
    return ws
