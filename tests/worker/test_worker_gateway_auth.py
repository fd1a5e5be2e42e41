"""Gateway authentication over real sockets: each bad token or claim tried, and what it got."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from worker_helpers import JWT_SECRET, connect, recv_reply, running_worker

from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.centrifugo import make_token
from travelagent.worker.config import WorkerConfig
from travelagent.worker.keys import ROOMS


def signed(**claims: Any) -> str:
    body: dict[str, Any] = {"sub": "u1", "exp": int(time.time()) + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, JWT_SECRET, "HS256")


async def refused_status(port: int, query: str, **kw: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(port, query, **kw):
            pass
    return info.value.response.status_code


# Each query is made when its test runs, not when the tests are collected: a token valid for
# ten minutes from collection would have expired by the time a long suite reached it.
@pytest.mark.parametrize(
    ("query", "status"),
    [
        (lambda: "userId=u1", 401),  # no token
        (lambda: f"token={jwt.encode({'sub': 'u1', 'exp': 2**31}, 'x' * 40, 'HS256')}", 401),
        (lambda: f"token={signed(exp=int(time.time()) - 5)}", 401),  # expired
        (lambda: f"token={signed(exp=32503680000)}", 401),  # the year 3000
        (lambda: f"token={signed(exp=None)}", 401),  # no exp
        (lambda: f"token={signed(rooms='lobby')}", 401),  # malformed rooms claim
        (lambda: f"token={signed()}&userId=u2", 403),  # another user in the query
        (lambda: f"token={signed(rooms=['lobby'])}&room=paris", 403),  # a room not granted
    ],
    ids=[
        "none",
        "forged",
        "expired",
        "year-3000",
        "no-exp",
        "rooms-string",
        "other-user",
        "room-not-granted",
    ],
)
async def test_a_gateway_requiring_tokens_refuses_bad_ones_before_the_upgrade(
    port: int, tmp_path: Path, query: Any, status: Any
) -> None:
    async with running_worker(port, tmp_path / "a.db", gateway_access="token") as app:
        assert await refused_status(port, query()) == status
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
    assert health["stats"]["gateway_refused_auth"] == 1
    assert app[ROOMS].bindings() == 0


async def test_an_open_loopback_gateway_still_refuses_a_bad_token(
    port: int, tmp_path: Path
) -> None:
    async with running_worker(port, tmp_path / "a.db"):
        assert await refused_status(port, f"token={signed(exp=32503680000)}") == 401
        async with connect(port, "userId=u1") as ws:  # no token: the original's clients
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            assert (await recv_reply(ws))[-1]["userId"] == "u1"


async def test_a_token_in_the_header_binds_the_socket_and_another_userid_is_refused(
    port: int, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {signed()}"}
    async with (
        running_worker(port, tmp_path / "a.db", gateway_access="token"),
        connect(port, "", additional_headers=headers) as ws,
    ):
        await ws.send(json.dumps({"type": "message", "text": "hi", "userId": "mallory"}))
        [err] = await recv_reply(ws)
        assert err["userId"] == "u1" and "bound to userId 'u1'" in err["error"]
        await ws.send(json.dumps({"type": "message", "text": "hotels in Paris"}))
        final = (await recv_reply(ws))[-1]
    assert "error" not in final and final["userId"] == "u1"


async def test_the_room_binding_is_undone_when_the_socket_closes(port: int, tmp_path: Path) -> None:
    query = f"token={signed(rooms=['trip'])}&room=trip"
    async with running_worker(port, tmp_path / "a.db", gateway_access="token") as app:
        async with connect(port, query) as ws:
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            await recv_reply(ws)
            assert app[ROOMS].rooms == {"u1": {"trip": 1}}
        for _ in range(100):
            if not app[ROOMS].rooms:
                break
            await _sleep(0.02)
    assert app[ROOMS].rooms == {}


async def test_the_async_client_sends_the_token_it_has(port: int, tmp_path: Path) -> None:
    async with (
        running_worker(port, tmp_path / "a.db", gateway_access="token"),
        AsyncGatewayClient(f"http://127.0.0.1:{port}", "u9", jwt_secret=JWT_SECRET) as c,
    ):
        rec = await c.request("hotels in Rome")
    assert rec.status == "ok"
    assert make_token("u9", JWT_SECRET)  # the same token the realtime service accepts


def test_a_non_loopback_gateway_requires_tokens_unless_explicitly_insecure() -> None:
    assert WorkerConfig(host="127.0.0.1").gateway_open
    assert not WorkerConfig(host="0.0.0.0", jwt_secret="s" * 32).gateway_open
    assert not WorkerConfig(host="10.0.0.5", jwt_secret="s" * 32).gateway_open
    assert WorkerConfig(host="0.0.0.0", gateway_access="insecure-open").gateway_open
    assert not WorkerConfig(
        host="127.0.0.1", jwt_secret="s" * 32, gateway_access="token"
    ).gateway_open
    with pytest.raises(ValueError, match="JWT secret"):
        WorkerConfig(host="0.0.0.0")


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


def test_an_open_gateway_says_so_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from travelagent.worker.app import create_app

    with caplog.at_level("WARNING", logger="travelagent.worker.app"):
        create_app(WorkerConfig(db_path=tmp_path / "a.db"), directory=_NoAgents())
        create_app(
            WorkerConfig(db_path=tmp_path / "b.db", jwt_secret="s" * 32, gateway_access="token"),
            directory=_NoAgents(),
        )
    lines = [r.getMessage() for r in caplog.records if "gateway open" in r.getMessage()]
    assert lines == ["gateway open: sockets without a token are admitted on 127.0.0.1 (loopback)"]


class _NoAgents:
    def get(self, user_id: str) -> Any:
        raise AssertionError("not used")

    async def close(self) -> None:
        pass


async def test_gateway_connections_per_address_are_capped_and_counted(
    port: int, tmp_path: Path
) -> None:
    async with running_worker(port, tmp_path / "a.db", max_connections_per_address=2):
        held = [await connect(port) for _ in range(2)]
        assert await refused_status(port, "userId=u1") == 429
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        for ws in held:
            await ws.close()
    assert health["stats"]["gateway_refused_per_address"] == 1


async def test_gateway_connections_per_user_are_capped_released_and_counted(
    port: int, tmp_path: Path
) -> None:
    # Every socket comes from 127.0.0.1: the per-address cap is far off, the user's is not.
    async with running_worker(
        port, tmp_path / "a.db", gateway_access="token", max_connections_per_user=2
    ):
        u1 = f"token={signed(sub='u1')}"
        held = [await connect(port, u1) for _ in range(2)]
        assert await refused_status(port, u1) == 429
        other = await connect(port, f"token={signed(sub='u2')}")  # another user gets in
        await held[0].close()
        await asyncio.sleep(0.1)
        again = await connect(port, u1)  # the closed socket's slot is free again
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        for ws in (held[1], other, again):
            await ws.close()
    assert health["stats"]["gateway_refused_per_user"] == 1
