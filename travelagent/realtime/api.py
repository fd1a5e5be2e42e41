"""The server API: ``POST /api/<method>`` (Centrifugo's HTTP API) and the publisher socket.

Both call ``call_api(service, method, params, recv_ns)``, so a publish through HTTP and one
through the socket behave the same. Authentication is the ``X-API-Key`` header, checked before
anything else (and before the WebSocket upgrade). The wire format of both, for this server and
its clients, is ``travelagent.wire.server_api``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from travelagent.realtime.idempotency import MAX_KEY_CHARS
from travelagent.realtime.service import SERVICE, RealtimeService
from travelagent.wire import centrifugo as cf
from travelagent.wire import server_api as api
from travelagent.wire.trace import now_ns

API_METHODS = api.API_METHODS
MAX_BROADCAST_CHANNELS = 1000


def _data(params: dict[str, Any]) -> Any:
    if "data" not in params:
        raise cf.ReplyError(cf.ERROR_BAD_REQUEST, "bad request: data is required")
    return params["data"]


def _idempotency_key(params: dict[str, Any]) -> str | None:
    key = params.get("idempotency_key")
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
        raise cf.ReplyError(
            cf.ERROR_BAD_REQUEST,
            f"bad request: idempotency_key must be a string of at most {MAX_KEY_CHARS} characters",
        )
    return key


def _publish(service: RealtimeService, params: dict[str, Any], recv_ns: int) -> dict[str, Any]:
    channel = cf.channel_param(params)
    offset, epoch = service.hub.publish(
        channel, _data(params), api_recv_ns=recv_ns, idempotency_key=_idempotency_key(params)
    )
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
        one = {"channel": channel, "data": body, "idempotency_key": params.get("idempotency_key")}
        responses.append({"result": _publish(service, one, recv_ns)})
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
    return api.authorized(request.headers, service.config.api_key)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(api.http_error({"code": code, "message": message}), status=status)


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
        return web.json_response(api.http_error(err.to_wire()), status=status)
    return web.json_response(api.http_result(result))


def _socket_reply(service: RealtimeService, line: str, recv_ns: int) -> dict[str, Any]:
    try:
        cmd = api.parse_socket_command(line)
        return api.socket_result(cmd.id, call_api(service, cmd.method, cmd.params, recv_ns))
    except api.SocketCommandError as err:
        return err.reply
    except cf.ReplyError as err:
        return api.socket_error(cmd.id, err.to_wire())


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
                error = {"code": cf.ERROR_BAD_REQUEST, "message": "text frames only"}
                await ws.send_str(cf.dumps(api.socket_error(0, error)))
                continue
            recv_ns = now_ns()
            replies = [_socket_reply(service, line, recv_ns) for line in api.socket_lines(msg.data)]
            service.output.flush()  # the pushes to clients first, then the answers
            if replies:
                await ws.send_str(api.encode_replies(replies))
    finally:
        service.sockets.discard(ws)
        service.publisher_sockets -= 1
    return ws
