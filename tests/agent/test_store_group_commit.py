"""Group commit: concurrent commits share one COMMIT (one fsync), each still its own unit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from travelagent.agent.state import TripState
from travelagent.agent.store import AgentStore, StoreError, TurnDone, TurnStart
from travelagent.agent.travel_agent import AgentError


def committed_agents(db: Path) -> dict[str, int]:
    """What another connection sees: only committed rows."""
    conn = sqlite3.connect(db)
    try:
        return {str(n): int(c) for n, c in conn.execute("SELECT name, message_count FROM agents")}
    finally:
        conn.close()


async def test_concurrent_commits_of_different_agents_share_a_few_commits(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    store = AgentStore(db)
    try:
        await store.load("warm")  # the connection is open: what follows is commits only
        before = store.groups
        pending = [
            store.begin_commit(f"u{i}", TripState(message_count=1), [(0, "user", f"hi {i}")])
            for i in range(40)
        ]
        await asyncio.gather(*pending)
        assert committed_agents(db) == {f"u{i}": 1 for i in range(40)}
        # 40 commits queued together: far fewer COMMITs (fsyncs) than commits.
        assert store.groups - before <= 10
    finally:
        await store.close()


async def test_a_failing_commit_in_a_group_fails_alone(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    store = AgentStore(db)
    try:
        await store.commit("u1", TripState(message_count=1), [(0, "user", "first")])
        good_a = store.begin_commit("a", TripState(message_count=1), [(0, "user", "x")])
        bad = store.begin_commit("u1", TripState(message_count=2), [(0, "user", "dup seq")])
        good_b = store.begin_commit("b", TripState(message_count=1), [(0, "user", "y")])
        await good_a
        with pytest.raises(StoreError, match=r"commit failed.*UNIQUE"):
            await bad
        await good_b
        assert committed_agents(db) == {"u1": 1, "a": 1, "b": 1}
        assert await store.messages("u1") == [(0, "user", "first")]
    finally:
        await store.close()


async def test_a_commit_after_a_failed_one_is_not_written(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    store = AgentStore(db)
    try:
        await store.commit("u1", TripState(message_count=1), [(0, "user", "first")])
        question = store.begin_commit(
            "u1", TripState(message_count=2), [(0, "user", "dup seq")], turn=TurnStart("m", 0, "q")
        )
        reply = store.begin_commit(
            "u1",
            TripState(message_count=3),
            [(2, "assistant", "answer")],
            turn=TurnDone("m", "answer"),
            after=question,
        )
        with pytest.raises(StoreError, match="UNIQUE"):
            await question
        with pytest.raises(StoreError, match="the commit it follows failed"):
            await reply
        assert await store.messages("u1") == [(0, "user", "first")]
        assert (await store.turns("u1")).records == {}
    finally:
        await store.close()


async def test_a_read_queued_after_a_commit_sees_it(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "agents.db")
    try:
        pending = store.begin_commit("u1", TripState(destination="Rome", message_count=1), [])
        loaded = await store.load("u1")  # queued behind the commit, never inside its group
        await pending
        assert loaded.destination == "Rome"
    finally:
        await store.close()


async def test_a_turn_cancelled_at_any_point_leaves_memory_and_disk_agreeing(
    tmp_path: Path,
) -> None:
    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.llm.profiles import LatencyProfile
    from travelagent.agent.llm.simulated import SimulatedLLM

    fast = LatencyProfile("test-fast", (1, 2), (0.05, 0.1), (0, 0), "test")
    db = tmp_path / "agents.db"
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=fast))
    agent = d.get("u1")
    try:
        for k in range(0, 40, 2):  # cancel after k loop passes: before, during, after commits
            task = asyncio.create_task(agent.handle_message(f"question {k}"))
            for _ in range(k):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgentError):
                await task
            # The next turn works: its seq follows what is on disk, not a stale memory.
            assert await agent.handle_message("budget tips")
        stored = await d.store.messages("u1")
        assert [s for s, _, _ in stored] == list(range(stored[0][0], stored[-1][0] + 1))
        assert (await agent.state()).message_count == stored[-1][0] + 1
    finally:
        await d.close()


async def test_an_unstreamed_turn_commits_question_and_reply_in_one_group(tmp_path: Path) -> None:
    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.llm.simulated import SimulatedLLM

    db = tmp_path / "agents.db"
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile="instant"))
    agent = d.get("u1")
    try:
        await agent.handle_message("hotels in Rome")  # loads the agent, opens the store
        before = d.store.groups
        reply = await agent.handle_message("budget tips", msg_id="m2")
        assert d.store.groups - before == 1  # one COMMIT, one fsync, for both writes
        stored = await d.store.messages("u1")
        assert stored[-2:] == [(2, "user", "budget tips"), (3, "assistant", reply)]
        assert (await d.store.turns("u1")).records["m2"].state == "done"
    finally:
        await d.close()
