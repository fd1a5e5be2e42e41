"""The webhook sender's HTTP/1.1: one request's bytes out, one response's bytes in; pure code.

The sender POSTs one small JSON body at a time on a keep-alive connection and needs only the
status, whether the connection may be used again, and the start of the body (a dead letter's
reason). So this is HTTP/1.1 reduced to that, after RFC 9112:
- ``encode_request`` (``RequestTemplate`` for the part every request repeats, checked once)
  writes the request line, ``Host``, ``Content-Length`` and the given headers, refusing a
  name that is not a token or a value that could split the request (CR, LF, NUL);
- ``ResponseParser`` takes bytes as they come (``feed``) and gives the response once it is
  whole: 1xx interim responses are skipped, the body is framed by ``Content-Length``, by
  ``Transfer-Encoding: chunked`` or (neither) by the end of the connection (``feed_eof``);
  ``keep_alive`` is False for ``Connection: close``, for HTTP/1.0 without keep-alive and for a
  body read to the end of the connection. Headers over ``max_header_bytes`` or a body over
  ``max_body_bytes`` are errors, as is anything that is not HTTP/1.x.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1 << 20
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 token)
_NO_SPACE = re.compile(r"[^\s\0]+")  # a method, a target, a host
_BAD_VALUE = re.compile(r"[\r\n\0]")
_NO_BODY = frozenset({204, 304})


class HttpParseError(ValueError):
    """The peer sent something that is not an HTTP/1.x response this parser accepts."""


def _check_header(name: str, value: str) -> None:
    if name not in _GOOD_NAMES:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"bad header name {name!r}")
        if len(_GOOD_NAMES) < 64:
            _GOOD_NAMES.add(name)
    if _BAD_VALUE.search(value) is not None:
        raise ValueError(f"bad value for header {name!r}")


_GOOD_NAMES: set[str] = set()  # names already found to be tokens (a sender uses a few)


class RequestTemplate:
    """The part of a request that is the same every time, checked and joined once; ``encode``
    adds ``Content-Length``, the headers of this request and the body."""

    def __init__(
        self, method: str, target: str, host: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        for what, value in (("method", method), ("target", target), ("host", host)):
            if _NO_SPACE.fullmatch(value) is None:
                raise ValueError(f"bad {what} {value!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        for name, value in headers:
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        self._head = "\r\n".join(lines) + "\r\n"

    def encode(self, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
        parts = [self._head, f"Content-Length: {len(body)}\r\n"]
        for name, value in headers:
            _check_header(name, value)
            parts.append(f"{name}: {value}\r\n")
        parts.append("\r\n")
        return "".join(parts).encode("latin-1") + body


def encode_request(
    method: str, target: str, host: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """One request with ``body`` (``Content-Length`` set here) as the bytes to write."""
    return RequestTemplate(method, target, host).encode(headers, body)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    keep_alive: bool


class ResponseParser:
    """Bytes in, one ``Response`` out. Make a new parser for each request."""

    def __init__(
        self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.max_header_bytes, self.max_body_bytes = max_header_bytes, max_body_bytes
        self._buf = bytearray()
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self._length: int | None = None  # Content-Length, when the body is framed by it
        self._chunked = False
        self._body = bytearray()
        self._done: Response | None = None

    @property
    def started(self) -> bool:
        """Whether any byte of the response has arrived."""
        return bool(self._buf) or self._head is not None or self._done is not None

    def feed(self, data: bytes) -> Response | None:
        """Add ``data``; the response once it is whole (None: more is needed). Bytes after a
        whole response are an error: nothing was asked for them."""
        if self._done is not None:
            if data:
                raise HttpParseError("data after the response")
            return self._done
        self._buf += data
        while self._head is None:
            if not self._read_head():
                return None
        if self._chunked:
            self._read_chunks()
        elif self._length is not None:
            need = self._length - len(self._body)
            self._body += self._buf[:need]
            del self._buf[:need]
            if len(self._body) == self._length:
                self._finish(keep_alive=self._head[2])
        else:
            self._body += self._buf
            self._buf.clear()
        self._check_body()
        if self._done is not None and self._buf:
            raise HttpParseError("data after the response")
        return self._done

    def feed_eof(self) -> Response:
        """The connection ended: the response if that ends it, else HttpParseError."""
        if self._done is not None:
            return self._done
        if self._head is not None and self._length is None and not self._chunked:
            self._finish(keep_alive=False)
            assert self._done is not None
            return self._done
        raise HttpParseError("connection closed before the whole response")

    # -- inside ------------------------------------------------------------------------------

    def _read_head(self) -> bool:
        """Read one head (an interim one or the final one); False: more bytes are needed."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > self.max_header_bytes:
                raise HttpParseError("response headers too large")
            return False
        if end > self.max_header_bytes:
            raise HttpParseError("response headers too large")
        raw = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        status_line, *header_lines = raw.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise HttpParseError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpParseError(f"bad header line: {line[:80]!r}")
            headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            return True  # an interim response: the final one's head comes next
        conn = headers.get("connection", "").lower()
        keep_alive = "close" not in conn and (version == "HTTP/1.1" or "keep-alive" in conn)
        self._head = (status, headers, keep_alive)
        te = headers.get("transfer-encoding", "").lower()
        if status in _NO_BODY:
            self._length = 0
        elif te:
            if te.rsplit(",", 1)[-1].strip() != "chunked":
                raise HttpParseError(f"unsupported transfer-encoding {te!r}")
            self._chunked = True
        elif "content-length" in headers:
            raw_length = headers["content-length"]
            if not raw_length.isdigit():
                raise HttpParseError(f"bad content-length {raw_length!r}")
            self._length = int(raw_length)
            if self._length > self.max_body_bytes:
                raise HttpParseError("response body too large")
        if self._length == 0:
            self._finish(keep_alive=keep_alive)
        return True

    def _read_chunks(self) -> None:
        while self._done is None:
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > self.max_header_bytes:
                    raise HttpParseError("chunk header too large")
                return
            size_text = bytes(self._buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpParseError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:  # the last chunk, then trailers up to an empty line
                trailers_end = self._buf.find(b"\r\n\r\n", end)
                if trailers_end < 0:
                    return
                del self._buf[: trailers_end + 4]
                assert self._head is not None
                self._finish(keep_alive=self._head[2])
                return
            if len(self._buf) < end + 2 + size + 2:
                self._check_size(len(self._body) + size)
                return
            start = end + 2
            if self._buf[start + size : start + size + 2] != b"\r\n":
                raise HttpParseError("chunk not followed by CRLF")
            self._body += self._buf[start : start + size]
            del self._buf[: start + size + 2]
            self._check_body()

    def _check_size(self, size: int) -> None:
        if size > self.max_body_bytes:
            raise HttpParseError("response body too large")

    def _check_body(self) -> None:
        self._check_size(len(self._body))

    def _finish(self, *, keep_alive: bool) -> None:
        assert self._head is not None
        status, headers, _ = self._head
        self._done = Response(status, headers, bytes(self._body), keep_alive)
