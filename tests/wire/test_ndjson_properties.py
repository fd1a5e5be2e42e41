"""Properties of the newline-JSON splitter every protocol here rides on."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, deep_nesting

from travelagent.wire import ndjson


@given(JSON_VALUES)
def test_a_dumped_value_is_one_utf8_line_that_loads_back(value: Any) -> None:
    line = ndjson.dumps(value)
    assert "\n" not in line and "\r" not in line
    line.encode()  # a socket write must not fail
    assert json.loads(line) == value


@given(st.lists(JSON_OBJECTS, max_size=3))
def test_joined_objects_split_back_in_order(objects: list[dict[str, Any]]) -> None:
    text = ndjson.join(objects)
    assert [obj for obj, _ in ndjson.objects(text)] == objects
    assert [obj for obj, _ in ndjson.objects(text.encode())] == objects


@given(st.lists(JSON_VALUES, max_size=5))
def test_line_bytes_make_a_body_that_splits_into_the_values(values: list[Any]) -> None:
    body = b"".join(ndjson.line_bytes(v) for v in values)
    assert [json.loads(line) for line in ndjson.lines(body)] == values


@given(st.one_of(st.text(), st.binary(), deep_nesting()))
def test_any_text_splits_into_non_blank_lines_and_objects_without_raising(
    text: str | bytes,
) -> None:
    lines = list(ndjson.lines(text))
    assert all(line.strip() and "\n" not in line for line in lines)
    for obj, line in ndjson.objects(text):
        assert isinstance(obj, dict) and line in lines
