"""Open N idle connections and hold them: the client side of the memory section.

``python -m travelagent.bench.idle gateway|realtime URL COUNT [WARM]`` connects COUNT clients
(the project's gateway client, or a Centrifugo client that connects and subscribes to its agent
channel; ``TRAVELAGENT_JWT_SECRET`` signs the tokens), prints one JSON line (``open``,
``failed``, ``seconds``), then holds every socket until its stdin closes. With WARM, it first
opens and closes WARM connections, prints ``{"warm": n}`` and waits for a line on stdin. It
runs as its own process so that the server's memory is measured without the clients' in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.centrifugo import CentrifugoClient, make_token
from travelagent.client.replies import agent_channel, realtime_ws_url
from travelagent.config import JWT_SECRET_ENV, secret

CONCURRENT_CONNECTS = 100


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def open_idle(
    kind: str, url: str, count: int, *, prefix: str = "idle"
) -> tuple[list[Any], int, float]:
    gate = asyncio.Semaphore(CONCURRENT_CONNECTS)
    jwt_secret = secret(JWT_SECRET_ENV) if kind == "realtime" else ""
    held: list[Any] = []
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        user = f"{prefix}-{i}"
        async with gate:
            try:
                if kind == "gateway":
                    client: Any = AsyncGatewayClient(url, user, timeout_s=30.0)
                    await client.connect()
                else:
                    client = CentrifugoClient(realtime_ws_url(url), make_token(user, jwt_secret))
                    await client.connect()
                    await client.subscribe(agent_channel(user))
                held.append(client)
            except Exception:  # a refused connection is counted, not fatal
                failed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return held, failed, time.perf_counter() - t0


async def close_all(held: list[Any]) -> None:
    await asyncio.gather(*(c.close() if hasattr(c, "close") else c.aclose() for c in held))


async def main_async(kind: str, url: str, count: int, warm: int) -> None:
    if warm:
        # Warm the server's code paths and pools first, then wait for the parent's go (it reads
        # the server's memory in between).
        warmed, _, _ = await open_idle(kind, url, warm, prefix="warm")
        await close_all(warmed)
        print(json.dumps({"warm": len(warmed)}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    held, failed, seconds = await open_idle(kind, url, count)
    print(json.dumps({"open": len(held), "failed": failed, "seconds": seconds}), flush=True)
    # Hold until the parent closes our stdin, without blocking the loop (pings are answered).
    await asyncio.to_thread(sys.stdin.read)
    os._exit(0)  # the kernel closes every socket at once; a graceful close of each is slow


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] not in ("gateway", "realtime"):
        print(__doc__, file=sys.stderr)
        return 2
    raise_nofile_limit()
    warm = int(args[3]) if len(args) == 4 else 0
    asyncio.run(main_async(args[0], args[1], int(args[2]), warm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
