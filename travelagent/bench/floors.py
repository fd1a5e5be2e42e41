"""The floors: bare WebSocket echoes in their own processes, one per library.

``python -m travelagent.bench.floors websockets|aiohttp`` serves on a free port and prints it.
Each answers a gateway message frame with the same frame retyped as a response (one string
replace, no JSON parsing), so the gateway client drives it exactly as it drives the worker:
the reply carries the message's ``id`` and ``trace`` back. What remains is the cost of the
library, the loopback socket and the client: the least any gateway written on it can cost.
Like the gateway, neither negotiates permessage-deflate: frames go uncompressed both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from types import TracebackType

FLOOR_KINDS = ("websockets", "aiohttp")
_MESSAGE = '"type":"message"'
_RESPONSE = '"type":"response"'


def as_reply(frame: str) -> str:
    """The client's frame answered as a whole reply: same text, id and trace."""
    return frame.replace(_MESSAGE, _RESPONSE, 1)


async def serve_websockets(host: str) -> None:
    import websockets

    async def echo(ws: websockets.ServerConnection) -> None:
        async for msg in ws:
            await ws.send(as_reply(msg) if isinstance(msg, str) else msg)

    async with websockets.serve(echo, host, 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


async def serve_aiohttp(host: str) -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(as_reply(msg.data))
        return ws

    app = web.Application()
    app.router.add_get("/api/gateway/ws", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Future()


class FloorServer:
    """``with FloorServer("websockets") as floor: floor.url`` runs one floor in a child."""

    def __init__(self, kind: str, *, host: str = "127.0.0.1", start_timeout_s: float = 20.0):
        if kind not in FLOOR_KINDS:
            raise ValueError(f"unknown floor {kind!r}; valid: {', '.join(FLOOR_KINDS)}")
        self.kind, self.host, self.start_timeout_s = kind, host, start_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def __enter__(self) -> FloorServer:
        argv = [sys.executable, "-m", "travelagent.bench.floors", self.kind, "--host", self.host]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # the child prints its port once listening
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"floor {self.kind} did not start (printed {line!r})")
        self.url = f"ws://{self.host}:{line}/api/gateway/ws"
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m travelagent.bench.floors")
    parser.add_argument("kind", choices=FLOOR_KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve = serve_websockets if args.kind == "websockets" else serve_aiohttp
    try:
        asyncio.run(serve(args.host))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
