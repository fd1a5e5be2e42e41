"""The webhook sender's HTTP/1.1 core: request bytes out, response bytes in, no sockets."""

from __future__ import annotations

import pytest

from travelagent.realtime.http1 import HttpParseError, Response, ResponseParser, encode_request


def feed_all(parser: ResponseParser, data: bytes, *, step: int = 0) -> Response | None:
    """Feed ``data`` whole, or ``step`` bytes at a time; the response once there is one."""
    if not step:
        return parser.feed(data)
    out = None
    for i in range(0, len(data), step):
        out = parser.feed(data[i : i + step])
        if out is not None:
            assert i + step >= len(data)
    return out


def test_a_request_is_one_write_with_host_length_and_the_given_headers() -> None:
    raw = encode_request("POST", "/hook?x=1", "127.0.0.1:8787", [("webhook-id", "msg_1")], b"{}")
    assert raw == (
        b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Length: 2\r\n"
        b"webhook-id: msg_1\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    "header",
    [("webhook-id", "a\r\nX-Evil: 1"), ("webhook-id", "a\nb"), ("bad name", "v"), ("a:b", "v")],
)
def test_a_header_that_could_split_the_request_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_request("POST", "/", "h", [header], b"")


def test_a_target_with_a_space_or_newline_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_request("POST", "/a b", "h", [], b"")
    with pytest.raises(ValueError):
        encode_request("POST", "/", "h\r\n", [], b"")


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@pytest.mark.parametrize("step", [0, 1, 7])
def test_a_response_framed_by_content_length_comes_whole_however_it_is_cut(step: int) -> None:
    resp = feed_all(ResponseParser(), OK, step=step)
    assert resp == Response(
        200, {"content-type": "application/json", "content-length": "11"}, b'{"ok":true}', True
    )


def test_nothing_comes_out_before_the_last_byte() -> None:
    parser = ResponseParser()
    assert not parser.started
    assert parser.feed(OK[:-1]) is None and parser.started
    assert parser.feed(OK[-1:]) is not None


@pytest.mark.parametrize("step", [0, 1, 5])
def test_a_chunked_body_is_joined_and_its_trailers_skipped(step: int) -> None:
    raw = (
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    resp = feed_all(ResponseParser(), raw, step=step)
    assert resp is not None and resp.status == 503 and resp.body == b"hello world"
    assert resp.keep_alive


def test_a_chunked_body_without_trailers_ends_at_the_empty_line() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    resp = ResponseParser().feed(raw)
    assert resp is not None and resp.body == b"ok"


def test_interim_responses_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    resp = feed_all(ResponseParser(), raw, step=3)
    assert resp is not None and resp.status == 200


def test_connection_close_and_http_1_0_are_not_kept_alive() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    old_kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    kept = []
    for raw in (close, old, old_kept):
        resp = ResponseParser().feed(raw)
        assert resp is not None
        kept.append(resp.keep_alive)
    assert kept == [False, False, True]


def test_a_body_without_length_ends_with_the_connection() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 500 Oops\r\n\r\npartial ") is None
    assert parser.feed(b"text") is None
    resp = parser.feed_eof()
    assert resp.body == b"partial text" and not resp.keep_alive


def test_no_content_has_no_body_whatever_it_says() -> None:
    resp = ResponseParser().feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert resp is not None and resp.status == 204 and resp.body == b""


def test_eof_before_the_whole_response_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(OK[:40])
    with pytest.raises(HttpParseError):
        parser.feed_eof()
    with pytest.raises(HttpParseError):
        ResponseParser().feed_eof()


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
        OK + b"HTTP/1.1 200 OK\r\n",  # more than was asked for
    ],
)
def test_what_is_not_one_http_1_response_is_an_error(raw: bytes) -> None:
    with pytest.raises(HttpParseError):
        ResponseParser().feed(raw)


def test_headers_and_bodies_over_their_bounds_are_errors() -> None:
    with pytest.raises(HttpParseError):
        ResponseParser(max_header_bytes=64).feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100)
    with pytest.raises(HttpParseError):
        ResponseParser(max_body_bytes=10).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n"
    with pytest.raises(HttpParseError):
        ResponseParser(max_body_bytes=10).feed(chunked)
