"""A stand-in gateway for load-test tests: answers the gateway protocol with a fixed delay.

It is not the Worker: it exists so the load scenarios can be tested on their own, including
against peers that behave like a deployed original Worker (``--no-ids``: no ``id`` and no
``trace`` in replies) and against slow replies (``--delay-ms``), where open-loop pacing matters.
Messages are answered one at a time per socket, in order, like one agent's input gate.

Special texts: ``error`` gets an error frame, ``silence`` gets no reply at all.

    python loadtests/standin.py --port 8790 --delay-ms 200 [--stream] [--no-ids]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from travelagent.wire import gateway as gw
from travelagent.wire.trace import Trace


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    opts: argparse.Namespace = request.app["opts"]
    ws = web.WebSocketResponse(compress=False)  # as the gateway
    await ws.prepare(request)
    # With a delay, replies are answered by a task of their own, so reading goes on meanwhile;
    # without one, each message is answered where it is read (the same order, one at a time,
    # without a queue and a task switch per message: the load generator's bench drives this).
    queue: asyncio.Queue[gw.ClientMessage | None] | None = None
    task = None
    if opts.delay_ms > 0:
        queue = asyncio.Queue()

        async def answer() -> None:
            assert queue is not None
            while (msg := await queue.get()) is not None:
                await reply(ws, msg, opts)

        task = asyncio.create_task(answer())
    # A frame the client must ignore, as agent frameworks send on connect.
    await ws.send_str(json.dumps({"type": "cf_agent_state", "state": {}}))
    async for m in ws:
        if m.type != WSMsgType.TEXT:
            continue
        try:
            msg = gw.parse_client_frame(m.data)
        except gw.FrameError as err:
            await ws.send_str(gw.error_frame(str(err)))
            continue
        if msg.trace is not None:
            msg.trace.stamp("worker.recv", "worker")
        if queue is None:
            try:
                await reply(ws, msg, opts)
            except ConnectionResetError:  # the client left mid-reply
                break
        else:
            await queue.put(msg)
    if queue is not None and task is not None:
        await queue.put(None)
        task.cancel()
    return ws


async def reply(ws: web.WebSocketResponse, msg: gw.ClientMessage, opts: argparse.Namespace) -> None:
    ids = not opts.no_ids
    mid = msg.id if ids else None
    trace: Trace | None = msg.trace if ids else None
    if msg.text == "silence":
        return
    if opts.delay_ms > 0:
        await asyncio.sleep(opts.delay_ms / 1000)
    if trace is not None:
        trace.stamp("worker.send", "worker")
    if msg.text == "error":
        await ws.send_str(
            gw.error_frame("stand-in error", user_id=msg.user_id, msg_id=mid, trace=trace)
        )
        return
    text = f"Reply to: {msg.text}"
    stream = opts.stream if msg.stream is None else msg.stream
    if not stream:
        await ws.send_str(gw.response_frame(text, user_id=msg.user_id, msg_id=mid, trace=trace))
        return
    await ws.send_str(gw.stream_start_frame(user_id=msg.user_id, msg_id=mid))
    for word in text.split(" "):
        await ws.send_str(gw.chunk_frame(word + " ", user_id=msg.user_id, msg_id=mid))
    await ws.send_str(gw.complete_frame(text, user_id=msg.user_id, msg_id=mid, trace=trace))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": "standin"})


def make_app(opts: argparse.Namespace) -> web.Application:
    app = web.Application()
    app["opts"] = opts
    app.router.add_get("/api/gateway/ws", handle_ws)
    app.router.add_get("/healthz", healthz)
    return app


def parse_args(argv: Any = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--no-ids", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    options = parse_args()
    web.run_app(make_app(options), host=options.host, port=options.port, print=None)
