from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from travelagent.config import LINK_CONTROL_TOKEN_ENV, secret
from travelagent.http_auth import bearer_headers
from travelagent.link.control import LinkSet, serve_control
from travelagent.link.faults import FaultError
from travelagent.link.proxy import Link
from travelagent.link.schedule import LinkShape


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def control() -> AsyncIterator[tuple[LinkSet, str, httpx.AsyncClient]]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    links = LinkSet(
        [
            Link(
                name,
                listen_host="127.0.0.1",
                listen_port=0,
                upstream_host="127.0.0.1",
                upstream_port=up_port,
                shape=LinkShape(delay_ms=1, setup_rtts=0),
            )
            for name in ("client_worker", "worker_realtime")
        ]
    )
    await links.start()
    runner: web.AppRunner = await serve_control(links, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    token = secret(LINK_CONTROL_TOKEN_ENV)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=bearer_headers(token)
    ) as http:
        yield links, f"http://127.0.0.1:{port}", http
    await runner.cleanup()
    await links.stop()
    server.close()
    await server.wait_closed()


async def connects(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return False
    writer.close()
    return True


async def test_healthz_and_links_list_every_link_with_stats(control: Any) -> None:
    _, _, http = control
    assert (await http.get("/healthz")).json() == {
        "status": "ok",
        "links": ["client_worker", "worker_realtime"],
        "refused_unauthorized": 0,
        "refused_busy": 0,
    }
    body = (await http.get("/links")).json()
    assert set(body) == {"client_worker", "worker_realtime"}
    assert body["client_worker"]["stats"]["connections"] == 0
    assert body["client_worker"]["shape"]["delay_ms"] == 1


async def test_fault_turned_on_and_off_through_the_api(control: Any) -> None:
    links, _, http = control
    port = links.links["client_worker"].listen_port
    resp = await http.post("/links/client_worker/faults", json={"refuse": True})
    assert resp.status_code == 200 and resp.json()["faults"]["refuse"] is True
    assert not await connects(port)
    assert await connects(links.links["worker_realtime"].listen_port)  # other links unaffected
    resp = await http.post("/links/client_worker/faults", json={"fault": "refuse", "on": False})
    assert resp.json()["faults"]["refuse"] is False
    assert await connects(port)


async def test_shape_changed_at_run_time(control: Any) -> None:
    links, _, http = control
    resp = await http.post("/links/worker_realtime/shape", json={"delay_ms": 25, "jitter_ms": 2})
    assert resp.status_code == 200
    assert links.links["worker_realtime"].shape == LinkShape(delay_ms=25, jitter_ms=2, setup_rtts=0)


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/links/nope/faults", {"reset": True}, 404, "no link 'nope'"),
        ("/links/client_worker/faults", {"explode": True}, 400, "unknown fault key"),
        ("/links/client_worker/shape", {"delay_ms": -3}, 400, "must not be negative"),
        ("/links/client_worker/shape", [1, 2], 400, "must be a JSON object"),
        ("/schedule/start", {"faults": [{"at_s": 1, "link": "x", "fault": "reset"}]}, 400, "x"),
    ],
)
async def test_bad_control_requests_get_4xx_with_a_reason(
    control: Any, path: Any, body: Any, status: Any, reason: Any
) -> None:
    _, _, http = control
    resp = await http.post(path, json=body)
    assert resp.status_code == status
    assert reason in resp.json()["error"]


async def test_body_that_is_not_json_gets_400(control: Any) -> None:
    _, _, http = control
    resp = await http.post("/links/client_worker/faults", content=b"{nope")
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


async def test_records_can_be_switched_on_read_and_cleared(control: Any) -> None:
    links, _, http = control
    await http.post("/links/client_worker/records", json={"recording": True})
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", links.links["client_worker"].listen_port
    )
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    writer.close()
    records = (await http.get("/links/client_worker/records")).json()["records"]
    assert {r["direction"] for r in records} == {"up", "down"}
    await http.post("/links/client_worker/records", json={"clear": True})
    assert (await http.get("/links/client_worker/records")).json()["records"] == []


async def test_scheduled_fault_turns_on_then_off_by_itself(control: Any, tf: float) -> None:
    links, _, http = control
    port = links.links["client_worker"].listen_port
    faults = [{"at_s": 0.05, "link": "client_worker", "fault": "refuse", "duration_s": 0.3}]
    resp = await http.post("/schedule/start", json={"faults": faults})
    assert resp.json() == {"events": 2}
    deadline = time.monotonic() + 5 * tf
    while not links.fired[0]:
        assert time.monotonic() < deadline, "the fault never turned on"
        await asyncio.sleep(0.01)
    assert not await connects(port)
    while not links.fired[1]:
        assert time.monotonic() < deadline, "the fault never turned off"
        await asyncio.sleep(0.01)
    assert await connects(port)
    status = (await http.get("/schedule")).json()["events"]
    assert [(e["fault"], e["on"], e["fired"]) for e in status] == [
        ("refuse", True, True),
        ("refuse", False, True),
    ]


def test_schedule_naming_an_unknown_link_is_rejected_up_front() -> None:
    with pytest.raises(FaultError, match="unknown link 'ghost'"):
        LinkSet([], [{"at_s": 1, "link": "ghost", "fault": "reset"}])


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong-token"]
)
async def test_the_control_api_refuses_callers_without_the_token(
    control: Any, headers: Any
) -> None:
    links, url, _ = control
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        assert (
            await http.post("/links/client_worker/faults", json={"refuse": True})
        ).status_code == 401
        assert (await http.get("/links")).status_code == 401
        assert (await http.get("/healthz")).json()["refused_unauthorized"] == 2
    assert not links.links["client_worker"].snapshot()["faults"]["refuse"]
