"""Client-supplied strings made safe to put in a log line; the one place that does it.

Message ids, user ids, room names, webhook ids and error texts that quote them come from
clients. Written into a log line as they are, a ``\\n`` forges a second log line and an ANSI
escape (``\\x1b[...``) rewrites a terminal. ``esc`` writes every control, format and line or
paragraph separator character as an escape (``\\n``, ``\\x1b``, ``\\u202e``), doubles the
backslash so an escape cannot be faked, and cuts a long value short, saying how much was cut.
Use it for each such argument of a log call: ``log.warning("turn %s failed", esc(msg_id))``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

MAX_CHARS: Final = 200
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"})


def _escape_char(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    if unicodedata.category(c) not in _UNSAFE_CATEGORIES:
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def esc(value: object, *, max_chars: int = MAX_CHARS) -> str:
    """``value`` as text fit for one log line (see the module's docstring)."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - max_chars
    if cut > 0:
        text = text[:max_chars]
    if not (text.isprintable() and "\\" not in text):
        text = "".join(_escape_char(c) for c in text)
    return f"{text}…(+{cut} chars)" if cut > 0 else text
