"""The hybrid: agent traffic through the gateway, presence and rooms through realtime, one
agent instance behind both paths."""

from __future__ import annotations

from pathlib import Path

from conftest import free_port
from worker_helpers import running_worker

from travelagent.client.aio_hybrid import AsyncHybridClient
from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.config import JWT_SECRET_ENV, secret
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.worker.keys import ROOMS


async def test_members_see_each_other_and_hear_the_agents_itinerary_changes(tmp_path: Path) -> None:
    key = secret(JWT_SECRET_ENV)
    rt_port, w_port = free_port(), free_port()
    cfg = RealtimeConfig.from_env(
        port=rt_port, webhook_url=f"http://127.0.0.1:{w_port}/api/realtime/webhook"
    )
    async with (
        running_realtime(cfg) as rt,
        running_worker(
            w_port,
            tmp_path / "w.db",
            realtime_url=f"http://127.0.0.1:{rt_port}",
            stream=False,
            jwt_secret=key,
            gateway_access="token",  # the hybrid client sends the token it has for realtime
        ) as worker,
    ):
        gw = f"ws://127.0.0.1:{w_port}"
        alice = AsyncHybridClient(gw, rt.ws_url, "alice", "trip", jwt_secret=key)
        bob = AsyncHybridClient(gw, rt.ws_url, "bob", "trip", jwt_secret=key)
        async with alice:
            async with bob:
                await alice.wait_for("join", user="bob")
                members = {v["user"] for v in (await bob.presence()).values()}
                assert members == {"alice", "bob"}
                rec = await alice.request("add a day trip to Kyoto to my itinerary")
                assert rec.status == "ok" and rec.arch == "hybrid"
                for member in (alice, bob):
                    ev = await member.wait_for("pub", type="itinerary")
                    assert ev.data["agent"] == "alice"
                    assert "Kyoto" in str(ev.data["itinerary"])
            await alice.wait_for("leave", user="bob")
            # bob's socket is closed: his room binding is undone, alice's remains
            assert worker[ROOMS].rooms.keys() == {"alice"}
            # The same agent instance answers on the realtime path: it knows about Kyoto.
            async with AsyncRealtimeClient(rt.ws_url, "alice", jwt_secret=key) as rc:
                shown = await rc.request("show my itinerary")
            assert shown.status == "ok" and "Kyoto" in shown.reply
