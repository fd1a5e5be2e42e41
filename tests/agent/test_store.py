from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from travelagent.agent.state import TripState
from travelagent.agent.store import AgentStore, StoreError


async def test_state_round_trips_through_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    store = AgentStore(db)
    state = TripState(
        destination="Tokyo",
        start_date="2026-12-10",
        end_date="2026-12-20",
        budget=3000.0,
        preferences=["museums"],
        itinerary=[{"kind": "day_trip", "name": "Kyoto"}],
        recent_messages=[{"role": "user", "content": "hi"}],
        message_count=1,
    )
    await store.commit("u1", state, [(0, "user", "hi")])
    await store.close()

    reopened = AgentStore(db)
    try:
        assert await reopened.load("u1") == state
        assert await reopened.load("nobody") == TripState()
    finally:
        await reopened.close()


async def test_database_uses_wal_and_the_documented_tables(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    store = AgentStore(db)
    await store.load("u1")
    await store.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"agents", "messages"} <= tables
    finally:
        conn.close()


async def test_recent_messages_are_bounded_to_the_last_max_recent(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agents.db", max_recent=5)
    state = TripState()
    for i in range(12):
        state.recent_messages.append({"role": "user", "content": f"m{i}"})
        state.message_count += 1
        await store.commit("u1", state, [(i, "user", f"m{i}")])
    try:
        stored = await store.messages("u1")
        assert [c for _, _, c in stored] == [f"m{i}" for i in range(7, 12)]
        loaded = await store.load("u1")
        assert [m["content"] for m in loaded.recent_messages] == [f"m{i}" for i in range(7, 12)]
        assert loaded.message_count == 12
    finally:
        await store.close()


async def test_a_failed_commit_rolls_back_and_reports_a_store_error(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agents.db")
    state = TripState(message_count=1)
    await store.commit("u1", state, [(0, "user", "first")])
    changed = TripState(destination="Rome", message_count=2)
    with pytest.raises(StoreError, match="commit failed"):
        await store.commit("u1", changed, [(0, "user", "duplicate seq")])
    try:
        assert (await store.load("u1")).destination is None
        assert await store.messages("u1") == [(0, "user", "first")]
    finally:
        await store.close()


async def test_a_closed_store_refuses_work_with_a_clear_error(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agents.db")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.load("u1")


def test_unknown_synchronous_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        AgentStore(tmp_path / "x.db", synchronous="SOMETIMES")
