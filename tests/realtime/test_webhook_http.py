"""The webhook sender's keep-alive connection, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from travelagent.realtime.http1 import HttpParseError
from travelagent.realtime.webhook_http import ConnectionEnded, Endpoint, KeepAliveConnection

HEADERS = [("webhook-id", "msg_1"), ("content-type", "application/json")]


@asynccontextmanager
async def aiohttp_server(
    port: int, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[list[bytes]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.read())
        return await handler(request)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield bodies
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(port: int, handler: Handler) -> AsyncIterator[None]:
    """A TCP server running ``handler`` per connection; each connection closed after it."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def endpoint(port: int) -> Endpoint:
    return Endpoint.from_url(f"http://127.0.0.1:{port}/hook")


def test_the_endpoint_is_read_once_from_the_url() -> None:
    ep = Endpoint.from_url("http://user@example.test:8787/api/hook?x=1")
    assert (ep.host, ep.port, ep.host_header, ep.target, ep.tls) == (
        "example.test", 8787, "example.test:8787", "/api/hook?x=1", False
    )  # fmt: skip
    assert Endpoint.from_url("https://[::1]/").port == 443
    with pytest.raises(ValueError):
        Endpoint.from_url("ftp://example.test/")


async def test_posts_reuse_one_connection_and_carry_the_body_and_headers(port: int) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append((request.headers.get("webhook-id"), request.headers.get("Content-Type")))
        return web.json_response({"ok": True})

    async with aiohttp_server(port, ok) as bodies:
        conn = KeepAliveConnection(endpoint(port))
        for i in range(5):
            resp = await conn.post(HEADERS, b'{"n": %d}' % i)
            assert resp.status == 200 and resp.body == b'{"ok": true}' and resp.keep_alive
        conn.close()
    assert conn.opened == 1
    assert bodies == [b'{"n": %d}' % i for i in range(5)]
    assert seen == [("msg_1", "application/json")] * 5  # one content type, not two


async def test_a_request_on_an_open_connection_is_written_when_it_is_begun(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=(await request.read()).decode())

    async with aiohttp_server(port, ok):
        conn = KeepAliveConnection(endpoint(port))
        first = conn.begin(HEADERS, b"1")
        assert first.waiter is None  # nothing open yet: finish opens the connection
        assert (await conn.finish(first)).body == b"1"
        second = conn.begin(HEADERS, b"2")
        assert second.waiter is not None  # written already, in this pass of the loop
        assert (await conn.finish(second)).body == b"2"
        conn.close()
    assert conn.opened == 1


async def test_connection_close_in_the_answer_opens_a_new_connection_next_time(
    port: int,
) -> None:
    async def closing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy", headers={"Connection": "close"})

    async with aiohttp_server(port, closing):
        conn = KeepAliveConnection(endpoint(port))
        for _ in range(2):
            resp = await conn.post(HEADERS, b"{}")
            assert resp.status == 503 and resp.body == b"busy" and not resp.keep_alive
    assert conn.opened == 2


def idle_closer(answered: list[bytes]) -> Handler:
    """Answers the first request on each connection, then closes the connection when the
    second request arrives without answering it: an idle keep-alive connection let go by the
    server just as a request crossed the close."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(2):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            if n == 1:
                return
            answered.append(body)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    return serve


async def test_a_request_crossing_an_idle_close_is_sent_once_more_on_a_new_connection(
    port: int,
) -> None:
    answered: list[bytes] = []
    async with raw_server(port, idle_closer(answered)):
        conn = KeepAliveConnection(endpoint(port))
        assert (await conn.post(HEADERS, b"1")).body == b"ok"
        assert (await conn.post(HEADERS, b"2")).body == b"ok"  # closed unanswered, then again
        conn.close()
    assert answered == [b"1", b"2"] and conn.opened == 2


async def test_a_new_connection_closed_before_any_answer_is_an_error_not_a_loop(
    port: int,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with raw_server(port, hang_up):
        conn = KeepAliveConnection(endpoint(port))
        with pytest.raises(ConnectionEnded) as info:
            await conn.post(HEADERS, b"{}")
        assert not info.value.answered and conn.opened == 1


async def test_an_answer_cut_in_the_middle_is_not_sent_again(port: int) -> None:
    requests = 0

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await reader.readuntil(b"\r\n\r\n")
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
        await writer.drain()

    async with raw_server(port, half):
        with pytest.raises(ConnectionEnded) as info:
            await KeepAliveConnection(endpoint(port)).post(HEADERS, b"")
        assert info.value.answered and requests == 1


async def test_garbage_in_the_answer_is_a_parse_error_and_drops_the_connection(
    port: int,
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client drops the connection

    async with raw_server(port, garbage):
        conn = KeepAliveConnection(endpoint(port))
        with pytest.raises(HttpParseError):
            await conn.post(HEADERS, b"")
        with pytest.raises(HttpParseError):
            await conn.post(HEADERS, b"")
        assert conn.opened == 2


async def test_a_timeout_closes_the_connection_so_a_late_answer_is_never_read(
    port: int, tf: float
) -> None:
    release = asyncio.Event()

    async def slow_first(request: web.Request) -> web.Response:
        if (await request.read()) == b"slow":
            await release.wait()
            return web.Response(text="late")
        return web.Response(text="fresh")

    async with aiohttp_server(port, slow_first):
        conn = KeepAliveConnection(endpoint(port))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2 * tf):
                await conn.post(HEADERS, b"slow")
        release.set()
        assert (await conn.post(HEADERS, b"now")).body == b"fresh"
        conn.close()
    assert conn.opened == 2


async def test_a_refused_connection_is_an_os_error(port: int) -> None:
    with pytest.raises(OSError):
        await KeepAliveConnection(endpoint(port)).post(HEADERS, b"{}")
