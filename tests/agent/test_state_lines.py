"""The state line of the system prompt, remembered: always the bytes json.dumps writes."""

from __future__ import annotations

import json

import pytest

from travelagent.agent import state as state_module
from travelagent.agent.catalog import load_catalog
from travelagent.agent.state import (
    TripState,
    apply_user_message,
    llm_messages,
    state_from_messages,
    summary_json,
)


def plain(s: TripState) -> str:
    return json.dumps(s.summary(), sort_keys=True, separators=(",", ":"))


def test_the_remembered_line_follows_every_change_of_the_trip() -> None:
    cat = load_catalog()
    s = TripState()
    for text in [
        "trip to Rome from 2026-05-01 to 2026-05-07",
        "hi",
        "budget of $2,500",
        "I love museums and wine",
        "add a day trip to Kyoto",
        "add a day trip to Kyoto",
        "show my itinerary",
        "trip to São Paulo",
    ]:
        s = s.copy()  # as a turn does: new lists, shared items
        apply_user_message(s, text, cat)
        assert summary_json(s) == plain(s)
        assert state_from_messages(llm_messages("u1", s)) == s.summary()
    # the same content in new objects (a state loaded from the store) gives the same line
    loaded = TripState(**{**s.__dict__, "itinerary": [dict(i) for i in s.itinerary]})
    assert summary_json(loaded) == summary_json(s)


def test_both_memories_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "SUMMARY_CACHE", 3)
    monkeypatch.setattr(state_module, "READ_CACHE", 3)
    for i in range(20):
        s = TripState(budget=float(i), itinerary=[{"kind": "activity", "name": f"x{i}"}])
        assert summary_json(s) == plain(s)
        assert state_from_messages(llm_messages("u", s))["basics"]["budget"] == float(i)
        assert len(state_module._SUMMARIES) <= 3 and len(state_module._READ) <= 3
