"""Newline-separated JSON, the framing under every protocol here; pure code, no I/O.

Centrifugo's client protocol and the publisher socket put several JSON messages in one
WebSocket text frame, one per line; the agent host's streamed RPC is an NDJSON body. This is
the one place that splits and joins such text. How a line that is not JSON is treated is the
protocol's business: ``lines`` gives the lines as they are, ``objects`` skips what is not a
JSON object (a client has nothing to match it to).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from travelagent.wire import jsoncodec


def lines(text: str | bytes) -> Iterator[str]:
    """The non-blank lines of ``text``, unchanged (bytes are decoded as UTF-8, replacing)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    for line in text.split("\n"):
        if line.strip():
            yield line


def objects(text: str | bytes) -> Iterator[tuple[dict[str, Any], str]]:
    """Each line that holds a JSON object, with the line itself; other lines are skipped."""
    for line in lines(text):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            yield obj, line


def dumps(obj: Any) -> str:
    """One compact line (no newline inside: JSON escapes them) that encodes as UTF-8.

    Non-ASCII text is written as itself, except that a lone surrogate (which a peer can send
    as a ``\\ud800`` escape) cannot be: such a line is written escaped, all ASCII, instead of
    failing later in the socket write with UnicodeEncodeError.
    """
    try:
        return jsoncodec.dumps_strict(obj)  # orjson: non-ASCII as itself, fast
    except TypeError:  # a lone surrogate (or a value orjson does not take): the old way
        pass
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(obj, separators=(",", ":"))
    return text


def join(messages: Iterable[Any]) -> str:
    """Messages (objects, or lines already encoded) as one newline-separated text."""
    return "\n".join(m if isinstance(m, str) else dumps(m) for m in messages)


def line_bytes(obj: Any) -> bytes:
    """One NDJSON line as bytes, newline included (a streamed body)."""
    return json.dumps(obj).encode() + b"\n"
