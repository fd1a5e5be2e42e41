"""Hypothesis strategies shared by the property tests: JSON values, TOML tables, traces.

The property tests feed every parser and state machine arbitrary input built from these, and
near-valid input built from valid examples with one part changed: arbitrary input finds the
crashes, near-valid input reaches the checks past the first one.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from travelagent.wire.trace import STAMP_NAMES, Trace

# Strings as peers send them: any code point, lone surrogates included (JSON can spell them
# with \\ud800 escapes), and a few that look like the protocol's own words.
KEYWORDS = st.sampled_from(
    ["message", "response", "type", "text", "id", "userId", "trace", "travel:u1", "room:lobby"]
)
# st.text() leaves surrogates out; aiohttp hands undecodable header bytes over as \udc80-\udcff
LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
TEXT = st.one_of(st.text(max_size=20), KEYWORDS, LONE_SURROGATES)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=5)

# TOML: string keys, 64-bit integers, floats including nan and inf (TOML spells both).
TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=12),
)
TOML_VALUES: st.SearchStrategy[Any] = st.recursive(
    TOML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)


def json_text(value: Any) -> str:
    return json.dumps(value)


def deep_nesting() -> st.SearchStrategy[str]:
    """JSON nested past the parser's recursion limit (json.loads raises RecursionError)."""
    return st.integers(min_value=1, max_value=3).map(lambda k: "[" * (5000 * k))


MSG_IDS = st.text(min_size=1, max_size=128)
STAMPS = st.tuples(
    st.one_of(st.sampled_from(sorted(STAMP_NAMES)), st.text(max_size=64)),
    st.integers(min_value=0, max_value=2**63),
    st.text(max_size=64),
)
TRACES = st.builds(Trace, id=MSG_IDS, stamps=st.lists(STAMPS, max_size=8))
