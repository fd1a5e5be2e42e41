"""``travelagent chat``: talk to the agent, watch the reply stream in, see what it cost."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from travelagent.vocab import ARCHES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="ws://127.0.0.1:8787", help="gateway base URL")
    p.add_argument("--realtime-url", default="ws://127.0.0.1:8000", help="realtime client URL")
    p.add_argument("--arch", choices=ARCHES, default="gateway")
    p.add_argument("--user", default="chat-user", help="user id (= the agent's id)")
    p.add_argument("--room", default="lobby", help="room for the hybrid's presence")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--timeout-s", type=float, default=60.0)


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(chat(args))
    except (OSError, ConnectionError) as err:
        print(f"travelagent chat: cannot connect: {err}", file=sys.stderr)
        return 1


def _client(args: argparse.Namespace) -> Any:
    from travelagent.config import JWT_SECRET_ENV, secret

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if args.arch == "gateway":
        from travelagent.client.aio_gateway import AsyncGatewayClient

        return AsyncGatewayClient(args.url, args.user, stream=args.stream,
                                  timeout_s=args.timeout_s, on_chunk=show,
                                  jwt_secret=secret(JWT_SECRET_ENV))  # fmt: skip
    if args.arch == "realtime":
        from travelagent.client.aio_realtime import AsyncRealtimeClient

        return AsyncRealtimeClient(args.realtime_url, args.user, jwt_secret=secret(JWT_SECRET_ENV),
                                   timeout_s=args.timeout_s, on_chunk=show)  # fmt: skip
    from travelagent.client.aio_hybrid import AsyncHybridClient

    return AsyncHybridClient(args.url, args.realtime_url, args.user, args.room,
                             jwt_secret=secret(JWT_SECRET_ENV), stream=args.stream,
                             timeout_s=args.timeout_s, on_chunk=show)  # fmt: skip


async def chat(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    interactive = sys.stdin.isatty()
    async with _client(args) as client:
        if interactive:
            print(f"connected ({args.arch}) as {args.user}; empty line or Ctrl-D to quit")
        while True:
            if interactive:
                sys.stdout.write("you> ")
                sys.stdout.flush()
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return 0
            sys.stdout.write("agent> ")
            rec = await client.request(line.strip())
            if rec.status != "ok":
                print(f"[{rec.status}: {rec.error}]")
                continue
            if not rec.chunks:
                sys.stdout.write(rec.reply)
            ttfc = (rec.first_ns - rec.send_ns) / 1e6 if rec.first_ns else float("nan")
            total = (rec.recv_ns - rec.send_ns) / 1e6 if rec.recv_ns else float("nan")
            print(f"\n  [{total:.1f} ms end to end, first reply after {ttfc:.1f} ms, "
                  f"{rec.chunks} chunks]")  # fmt: skip
