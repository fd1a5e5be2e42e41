"""One keep-alive HTTP/1.1 connection to the worker, for one webhook worker at a time.

Each of the sender's workers owns one ``KeepAliveConnection``: it delivers one webhook at a
time, so it never needs more than one, and no pool is shared between them. The connection is
opened on first use and kept while the server keeps it; a request is one ``transport.write``
of bytes built by ``http1.encode_request``, and the answer is read by ``http1.ResponseParser``
straight from ``data_received``. This replaced an ``aiohttp.ClientSession``, whose per-request
work (URL and header handling, tracing hooks, the connector, a response object with its
stream) was about a quarter of the realtime service's CPU at 20 clients on the
``ws-persistent`` path (docs/bench.md).

A server may close a keep-alive connection while it is idle, and the close can cross a request
already written. When a reused connection ends before any byte of the answer arrived, the
request is written once more at once on a new connection: the same ``webhook-id`` and body,
which the worker de-duplicates, so this can deliver nothing twice. Any other failure (refused,
reset, a timeout, a malformed answer) is the caller's to retry on its schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from travelagent.realtime.http1 import HttpParseError, RequestTemplate, Response, ResponseParser

USER_AGENT = "travelagent-realtime"


class ConnectionEnded(ConnectionError):
    """The connection ended before the whole answer; ``answered`` says whether any of it came."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class Endpoint:
    """Where the requests go, read once from the URL."""

    host: str
    port: int
    host_header: str
    target: str  # path and query
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host/..., not {url!r}")
        tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, parts.netloc.rpartition("@")[2], target, tls)


@dataclass
class Exchange:
    """One request: its bytes, and the answer's future once it was written."""

    request: bytes
    waiter: asyncio.Future[Response] | None = None


class _Protocol(asyncio.Protocol):
    """Feeds what arrives to the parser of the request in flight; anything else ends it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter, parser = self.waiter, self.parser
        if waiter is None or parser is None or waiter.done():
            self.abort()  # nothing was asked: the connection cannot be trusted any more
            return
        try:
            response = parser.feed(data)
        except HttpParseError as err:
            waiter.set_exception(err)
            self.abort()
            return
        if response is not None:
            self.parser = None
            waiter.set_result(response)

    def eof_received(self) -> bool:
        waiter, parser = self.waiter, self.parser
        if waiter is not None and parser is not None and not waiter.done():
            try:
                waiter.set_result(parser.feed_eof())
            except HttpParseError:
                self._ended(waiter, parser)
            self.parser = None
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and self.parser is not None and not self.waiter.done():
            self._ended(self.waiter, self.parser)

    @staticmethod
    def _ended(waiter: asyncio.Future[Response], parser: ResponseParser) -> None:
        answered = parser.started
        what = "in the middle of the answer" if answered else "before any answer"
        waiter.set_exception(ConnectionEnded(f"connection closed {what}", answered=answered))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class KeepAliveConnection:
    """POSTs to ``endpoint`` one at a time over one connection, opened again when needed."""

    def __init__(self, endpoint: Endpoint, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self._ssl = ssl_context if ssl_context is not None or not endpoint.tls else True
        self._proto: _Protocol | None = None
        self._template = RequestTemplate(
            "POST", endpoint.target, endpoint.host_header,
            [("Content-Type", "application/json"), ("User-Agent", USER_AGENT)],
        )  # fmt: skip
        self.opened = 0  # connections opened, for tests and the bench

    async def post(self, headers: Sequence[tuple[str, str]], body: bytes) -> Response:
        """Send one POST and read its answer (``begin`` then ``finish``)."""
        return await self.finish(self.begin(headers, body))

    def begin(self, headers: Sequence[tuple[str, str]], body: bytes) -> Exchange:
        """Encode one POST and, if the connection is open, write it now, in the caller's pass
        of the event loop; ``finish`` reads the answer (and opens the connection first if it
        was not open). Raises ValueError for a header that could split the request."""
        own = [(n, v) for n, v in headers if n.lower() != "content-type"]
        exchange = Exchange(self._template.encode(own, body))
        proto = self._proto
        if proto is not None and not proto.closed:
            exchange.waiter = self._write(proto, exchange.request)
        return exchange

    async def finish(self, exchange: Exchange) -> Response:
        """The answer to ``exchange``; raise OSError (ConnectionEnded among them) or
        HttpParseError. The caller bounds the time (a timeout that cancels this closes the
        connection: a late answer must not be read as the next request's)."""
        try:
            if exchange.waiter is not None:
                try:
                    return self._answered(await exchange.waiter)
                except ConnectionEnded as err:
                    if err.answered:
                        raise
                    # The server let the idle connection go as the request crossed it: again,
                    # once, on a new connection (same webhook-id: de-duplicated if it arrived).
            waiter = self._write(await self._open(), exchange.request)
            return self._answered(await waiter)
        except BaseException:
            self.close()
            raise

    async def _open(self) -> _Protocol:
        self.close()
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        _, proto = await loop.create_connection(
            _Protocol, ep.host, ep.port, ssl=self._ssl or None,
            server_hostname=ep.host if self._ssl else None,
        )  # fmt: skip
        self._proto = proto
        self.opened += 1
        return proto

    @staticmethod
    def _write(proto: _Protocol, request: bytes) -> asyncio.Future[Response]:
        assert proto.transport is not None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        proto.parser, proto.waiter = ResponseParser(), waiter
        proto.transport.write(request)
        return waiter

    def _answered(self, response: Response) -> Response:
        if self._proto is not None:
            self._proto.waiter = None
        if not response.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None and not proto.closed:
            proto.closed = True
            with contextlib.suppress(Exception):
                proto.transport.close()
