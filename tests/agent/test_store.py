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


async def commit_turn(
    store: AgentStore, state: TripState, name: str, msg_id: str, *, done: bool = True
) -> None:
    from travelagent.agent.store import TurnDone, TurnStart

    seq = state.message_count
    state.message_count += 1
    await store.commit(
        name, state, [(seq, "user", f"q {msg_id}")], turn=TurnStart(msg_id, seq, "q")
    )
    if done:
        state.message_count += 1
        await store.commit(
            name,
            state,
            [(seq + 1, "assistant", f"a {msg_id}")],
            turn=TurnDone(msg_id, f"a {msg_id}"),
        )


async def test_replies_after_gives_the_done_turns_after_one_in_commit_order(
    tmp_path: Path,
) -> None:
    store = AgentStore(tmp_path / "a.db", synchronous="NORMAL")
    try:
        mine, other = TripState(), TripState()
        for m in ("m1", "m2", "m3"):
            await commit_turn(store, mine, "u1", m)
        await commit_turn(store, mine, "u1", "m4", done=False)  # started: no reply yet
        await commit_turn(store, mine, "u1", "m5")
        await commit_turn(store, other, "u2", "x1")
        after = await store.replies_after("u1", "m2", ["m4", "m1", "x1", "zz"])
        nothing = await store.replies_after("u1", "m5")
        unknown = await store.replies_after("u1", "x1")  # u2's id is not u1's
    finally:
        await store.close()
    assert after is not None and nothing is not None
    assert [(r.msg_id, r.reply) for r in after.replies] == [
        ("m1", "a m1"),  # asked for by id, though before "after"
        ("m3", "a m3"),
        ("m5", "a m5"),
    ]
    assert after.pending == {"m4": "started", "m1": "done", "x1": "new", "zz": "new"}
    assert nothing.replies == [] and unknown is None


async def test_replies_after_ignores_turns_older_than_the_retention(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.db", synchronous="NORMAL", turn_retention_s=0.0)
    try:
        state = TripState()
        await commit_turn(store, state, "u1", "m1")
        found = await store.replies_after("u1", None, ["m1"])
        gone = await store.replies_after("u1", "m1")
    finally:
        await store.close()
    assert found is not None and found.replies == [] and found.pending == {"m1": "new"}
    assert gone is None
