"""The realtime service's idempotency cache is bounded by its configured cap, over real sockets,
and its keys cannot collide across channels."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import httpx
import pytest

from travelagent.client.publisher import PublisherClient
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.idempotency import MAX_KEYS_ENV, IdempotencyCache
from travelagent.realtime.testing import running_realtime

API_KEY = "idempotency-cap-test-api-key"
JWT_SECRET = "idempotency-cap-test-jwt-secret-long-enough!"


def test_keys_of_different_channels_never_collide() -> None:
    c = IdempotencyCache(max_size=10)
    c.put("travel:a", "bc", 1, "e1", now_s=0.0)
    assert c.get("travel:ab", "c", now_s=0.0) is None
    assert c.get("travel:a", "bc", now_s=0.0) == (1, "e1")


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        IdempotencyCache(max_size=0)


async def test_the_service_holds_at_most_its_cap_of_keys(port: int) -> None:
    config = RealtimeConfig(
        port=port, jwt_secret=JWT_SECRET, api_key=API_KEY, webhook_url="", idempotency_max_keys=5
    )
    async with running_realtime(config) as rt:
        pub = PublisherClient(rt.publisher_url, API_KEY)
        await pub.connect()
        try:
            for i in range(12):
                await pub.publish("travel:u1", {"text": str(i)}, idempotency_key=f"k{i}")
            # the newest keys are still answered once; the oldest were let go
            again = await pub.publish("travel:u1", {"text": "11"}, idempotency_key="k11")
        finally:
            await pub.aclose()
        async with httpx.AsyncClient() as c:
            health = (await c.get(f"{rt.base_url}/healthz")).json()
        assert health["idempotency_keys"] == 5
        assert again["offset"] == 12  # the first k11's offset: not stored twice
        assert rt.service.hub.counters.duplicate_publications == 1


def test_a_bad_cap_from_the_environment_is_a_clear_error() -> None:
    from travelagent.realtime.cli import add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "1", "--dev"])
    env = {**os.environ, MAX_KEYS_ENV: "lots"}
    code = (
        "import argparse, sys\n"
        "from travelagent.realtime.cli import add_arguments, main\n"
        "p = argparse.ArgumentParser(); add_arguments(p)\n"
        "sys.exit(main(p.parse_args(['--port', '1', '--dev'])))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 2 and MAX_KEYS_ENV in r.stderr
    args.idempotency_max_keys = 0
    assert main(args) == 2
