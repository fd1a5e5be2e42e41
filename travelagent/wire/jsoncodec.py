"""The JSON encoder the wire formats use: orjson where it writes the same JSON, else stdlib.

orjson encodes several times faster than the standard library but refuses some values: integers
beyond 64 bits, non-string keys and lone surrogates. Those fall back to the standard library
here, so every value is written as before. Two differences remain, both to valid JSON that every
parser reads the same way: non-ASCII characters are written as themselves (UTF-8) instead of as
``\\u`` escapes, and a non-finite float is written ``null`` (the standard library writes
``NaN``, which is not JSON and which strict peers reject). Where exact bytes matter (a webhook
signature), the bytes signed are the bytes sent, whichever encoder made them. Decoding stays
with the standard library: orjson reads integers beyond 64 bits as floats, which would change
what a frame means.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any) -> str:
    """Compact JSON text (``separators=(",", ":")``)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def dumps_bytes(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def dumps_strict(obj: Any) -> str:
    """Compact JSON text by orjson alone: raises TypeError for what it refuses (the caller
    decides how to write that)."""
    return orjson.dumps(obj).decode()
