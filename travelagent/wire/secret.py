"""Comparing a secret a caller presented with the one expected; pure.

One function for every secret (API key, publish-proxy key, bearer tokens): constant-time, so a
key cannot be guessed byte by byte from response times, and total over what HTTP servers hand
over (aiohttp passes header bytes that are not UTF-8 as lone surrogates, which must be refused,
not raise). An empty expected secret matches nothing.
"""

from __future__ import annotations

import hmac


def matches(given: str, expected: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
