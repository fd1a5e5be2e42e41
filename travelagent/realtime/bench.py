"""A quick latency benchmark of the realtime service on this machine (not a test).

``python -m travelagent.realtime.bench [--messages N]`` starts the service in-process and
measures, per message: server-API publish (publisher socket and pooled HTTP) to subscriber
arrival, and client publish to webhook arrival. Prints percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
from typing import Any

import httpx
from aiohttp import web

from travelagent.client.centrifugo import CentrifugoClient, make_token
from travelagent.client.publisher import PublisherClient
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.wire.trace import now_ns

SECRET = "bench-jwt-secret-long-enough-for-hs256!"
KEY = "bench-key"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _summary(name: str, samples_ns: list[int]) -> str:
    ms = sorted(x / 1e6 for x in samples_ns)
    p = statistics.quantiles(ms, n=100)
    return f"{name:38s} n={len(ms):5d} p50={p[49]:.3f} p90={p[89]:.3f} p99={p[98]:.3f} ms"


async def _fanout(publish: Any, sub: CentrifugoClient, n: int) -> list[int]:
    out = []
    for i in range(n):
        t0 = now_ns()
        await publish({"n": i})
        push = await sub.pushes.get()
        out.append(push.t_ns - t0)
    return out


async def run(messages: int) -> None:
    arrived: asyncio.Queue[int] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrived.put_nowait(now_ns())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = _port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    cfg = RealtimeConfig(
        port=_port(),
        jwt_secret=SECRET,
        api_key=KEY,
        webhook_secret="whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQ=",
        webhook_url=f"http://127.0.0.1:{hook_port}/hook",
    )
    async with running_realtime(cfg) as rt:
        sub = CentrifugoClient(rt.ws_url, make_token("u1", SECRET))
        await sub.connect()
        await sub.subscribe("travel:u1")
        pub = PublisherClient(rt.publisher_url, KEY)
        await pub.connect()
        ws_samples = await _fanout(lambda d: pub.publish("travel:u1", d), sub, messages)
        async with httpx.AsyncClient(base_url=rt.base_url, headers={"X-API-Key": KEY}) as http:

            async def http_pub(d: Any) -> None:
                await http.post("/api/publish", json={"channel": "travel:u1", "data": d})

            http_samples = await _fanout(http_pub, sub, messages)
        hook_samples = []
        for i in range(messages):
            t0 = now_ns()
            await sub.publish("travel:u1", {"text": f"m{i}"})
            hook_samples.append(await arrived.get() - t0)
            await sub.pushes.get()
        print(_summary("publisher socket publish -> subscriber", ws_samples))
        print(_summary("pooled HTTP publish -> subscriber", http_samples))
        print(_summary("client publish -> webhook received", hook_samples))
        await pub.aclose()
        await sub.aclose()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    asyncio.run(run(parser.parse_args().messages))


if __name__ == "__main__":
    main()
