"""What an open client socket holds while idle, and the timers that replaced its tasks.

An idle socket keeps no writer task and no ping task (docs/bench.md, "Memory"): the writer runs
only while output is queued, the ping and the token expiry share one timer. These tests check
that, and that pings, the token expiry and delivery still behave as before.
"""

from __future__ import annotations

import asyncio

from test_realtime_server import JWT_SECRET, config, connected, next_push

from travelagent.client.centrifugo import CentrifugoClient, make_token
from travelagent.realtime.testing import running_realtime


def socket_tasks() -> list[str]:
    """The names of the running tasks whose coroutine is one of ``SessionSocket``'s."""
    names = []
    for task in asyncio.all_tasks():
        name = getattr(task.get_coro(), "__qualname__", "")
        if name.startswith("SessionSocket."):
            names.append(name)
    return names


async def wait_until(predicate: object, tf: float) -> None:
    assert callable(predicate)
    for _ in range(int(100 * tf)):
        if predicate():
            return
        await asyncio.sleep(0.02)


async def test_an_idle_socket_holds_no_task_of_its_own_and_still_gets_pushes(
    port: int, tf: float
) -> None:
    async with running_realtime(config(port, ping_interval_s=0.2)) as rt:
        clients = [await connected(rt, f"u{i}") for i in range(3)]
        for i, c in enumerate(clients):
            await c.subscribe(f"travel:u{i}")
        # Pings go out and come back while the sockets are idle ...
        await wait_until(lambda: all(c.pings >= 2 for c in clients), tf)
        assert all(c.pings >= 2 and c.closed is None for c in clients)
        # ... and once the replies are written, no writer (or pinger) task is left waiting.
        await wait_until(lambda: not socket_tasks(), tf)
        assert socket_tasks() == []
        # A publication wakes a writer again, which delivers it and ends.
        for round_ in range(2):
            await clients[0].publish("travel:u0", {"n": round_})
            push = await next_push(clients[0], tf)
            assert push.data == {"n": round_}
        await wait_until(lambda: not socket_tasks(), tf)
        assert socket_tasks() == []
        for c in clients:
            await c.aclose()


async def test_token_expiry_closes_the_socket_3005_while_pings_go_on(port: int, tf: float) -> None:
    async with running_realtime(config(port, ping_interval_s=0.2)) as rt:
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET, ttl_s=2), timeout_s=5)
        await c.connect()
        await wait_until(lambda: c.closed is not None, 3 * tf)
        assert c.closed is not None and c.closed.code == 3005
        # Pinged every 0.2 s until the token ran out (about 1-2 s after connect).
        assert c.pings >= 3
        await c.aclose()


async def test_a_ping_interval_longer_than_the_token_still_expires_it(port: int, tf: float) -> None:
    async with running_realtime(config(port, ping_interval_s=30.0)) as rt:
        c = CentrifugoClient(rt.ws_url, make_token("u1", JWT_SECRET, ttl_s=1), timeout_s=5)
        await c.connect()
        await wait_until(lambda: c.closed is not None, 3 * tf)
        assert c.closed is not None and c.closed.code == 3005 and c.pings == 0
        await c.aclose()
