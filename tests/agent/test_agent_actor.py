from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm.profiles import LatencyProfile
from travelagent.agent.llm.simulated import SimulatedLLM
from travelagent.agent.travel_agent import AgentError
from travelagent.wire.trace import MAX_STAMPS, Trace

FAST = LatencyProfile("test-fast", (2, 4), (0.1, 0.3), (1, 2), "test")
SLOW = LatencyProfile("test-slow", (150, 150), (1, 1), (0, 0), "test")


def stored(db: Path, agent: str) -> list[tuple[str, str]]:
    """Messages as another connection sees them: only what is committed."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT role, content FROM messages WHERE agent = ? ORDER BY seq", (agent,)
        ).fetchall()
        return [(str(r), str(c)) for r, c in rows]
    finally:
        conn.close()


class RecordingSink:
    def __init__(self, db: Path | None = None, agent: str = "") -> None:
        self.events: list[tuple[str, Any]] = []
        self.db, self.agent = db, agent
        self.committed_at_final: list[tuple[str, str]] | None = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        self.events.append(("start", None))

    async def chunk(self, text: str) -> None:
        self.events.append(("chunk", text))

    async def _final(self, kind: str, text: str) -> None:
        if self.db is not None:
            self.committed_at_final = stored(self.db, self.agent)
        self.events.append((kind, text))
        self.done.set()

    async def complete(self, text: str, trace: Trace | None) -> None:
        await self._final("complete", text)

    async def response(self, text: str, trace: Trace | None) -> None:
        await self._final("response", text)

    async def error(self, error: str, trace: Trace | None) -> None:
        await self._final("error", error)


class FlakyLLM:
    """Streams "ok" chunks, or fails mid-stream when the user says "boom"."""

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        yield "partial "
        if "boom" in messages[-1]["content"]:
            raise RuntimeError("model exploded")
        yield "ok"

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    return tmp_path / "agents.db"


async def test_one_live_agent_per_id_even_under_concurrent_first_calls(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    try:

        async def get(name: str) -> object:
            await asyncio.sleep(0)
            return d.get(name)

        agents = await asyncio.gather(*(get("u1") for _ in range(50)), get("u2"))
        assert len({id(a) for a in agents[:50]}) == 1
        assert agents[50] is not agents[0]
        assert len(d) == 2
        with pytest.raises(ValueError, match="agent name"):
            d.get("a/b")
    finally:
        await d.close()


async def test_messages_to_one_agent_run_one_at_a_time_in_arrival_order(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    agent = d.get("u1")
    traces = [Trace.start() for _ in range(15)]
    try:
        tasks = [
            asyncio.create_task(agent.handle_message(f"message {i}", trace=t))
            for i, t in enumerate(traces)
        ]
        await asyncio.gather(*tasks)
    finally:
        await d.close()
    users = [c for r, c in stored(db, "u1") if r == "user"]
    assert users == [f"message {i}" for i in range(15)]
    roles = [r for r, _ in stored(db, "u1")]
    assert roles == ["user", "assistant"] * 15  # each reply right after its message
    spans = [(t.get("agent.start"), t.get("agent.done")) for t in traces]
    for (_, done), (start, _) in itertools.pairwise(spans):
        assert done is not None and start is not None and done <= start


async def test_different_agents_run_concurrently(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=SLOW))
    ta, tb = Trace.start(), Trace.start()
    try:
        await asyncio.gather(
            d.get("a").handle_message("hello", trace=ta),
            d.get("b").handle_message("hello", trace=tb),
        )
    finally:
        await d.close()
    a0, a1, b0, b1 = (t.get(n) for t in (ta, tb) for n in ("agent.start", "agent.done"))
    assert a0 is not None and a1 is not None and b0 is not None and b1 is not None
    assert a0 < b1 and b0 < a1  # the intervals overlap


async def test_agent_stamps_carry_its_process_label_in_path_order(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST), process="agents")
    trace = Trace.start()
    try:
        await d.get("u1").handle_message("hi", trace=trace)
    finally:
        await d.close()
    assert [(n, p) for n, _, p in trace.stamps] == [
        ("agent.start", "agents"),
        ("llm.first", "agents"),
        ("llm.done", "agents"),
        ("agent.done", "agents"),
    ]
    times = [t for _, t, _ in trace.stamps]
    assert times == sorted(times)


async def test_handle_message_returns_only_after_the_reply_is_committed(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    try:
        reply = await d.get("u1").handle_message("budget tips")
        assert stored(db, "u1") == [("user", "budget tips"), ("assistant", reply)]
    finally:
        await d.close()


async def test_stream_commits_the_question_before_the_first_chunk_and_the_reply_before_the_end(
    db: Path,
) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    chunks: list[str] = []
    try:
        async for chunk in d.get("u1").stream_message("hotels in Rome"):
            if not chunks:
                assert stored(db, "u1") == [("user", "hotels in Rome")]
            chunks.append(chunk)
        assert len(chunks) > 10
        assert stored(db, "u1")[-1] == ("assistant", "".join(chunks))
    finally:
        await d.close()


@pytest.mark.parametrize("stream", [True, False])
async def test_on_message_delivers_the_final_frame_only_after_the_commit(
    db: Path, stream: bool
) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    sink = RecordingSink(db, "u1")
    try:
        await d.get("u1").on_message(sink, "flights from Paris to Rome", trace=None, stream=stream)
    finally:
        await d.close()
    kind, text = sink.events[-1]
    assert kind == ("complete" if stream else "response")
    assert sink.committed_at_final is not None
    assert sink.committed_at_final[-1] == ("assistant", text)
    if stream:
        assert sink.events[0] == ("start", None)
        assert "".join(t for k, t in sink.events if k == "chunk") == text
    else:
        assert len(sink.events) == 1


async def test_llm_failure_becomes_a_sink_error_and_releases_the_gate(db: Path, tf: float) -> None:
    d = LocalAgentDirectory(db, llm=FlakyLLM())
    agent = d.get("u1")
    try:
        sink = RecordingSink()
        await asyncio.wait_for(
            agent.on_message(sink, "boom", trace=None, stream=True), timeout=5 * tf
        )
        assert sink.events[-1] == ("error", "LLM backend failed: model exploded")
        with pytest.raises(AgentError, match="model exploded"):
            await asyncio.wait_for(agent.handle_message("boom again"), timeout=5 * tf)
        assert await asyncio.wait_for(agent.handle_message("fine"), timeout=5 * tf) == "partial ok"
    finally:
        await d.close()
    # The failed turns' questions are committed; their partial replies are not.
    assert stored(db, "u1") == [
        ("user", "boom"),
        ("user", "boom again"),
        ("user", "fine"),
        ("assistant", "partial ok"),
    ]


async def test_store_failure_is_a_clear_error_and_never_hangs_the_agent(
    db: Path, tf: float
) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    agent = d.get("u1")
    await d.store.close()
    try:
        for _ in range(2):  # the second call proves the gate was released
            with pytest.raises(AgentError, match="closed"):
                await asyncio.wait_for(agent.handle_message("hi"), timeout=5 * tf)
        sink = RecordingSink()
        await asyncio.wait_for(agent.on_message(sink, "hi", trace=None, stream=False), 5 * tf)
        assert sink.events[-1][0] == "error"
    finally:
        await d.llm.aclose()


async def test_abandoned_stream_releases_the_gate_when_closed(db: Path, tf: float) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    agent = d.get("u1")
    try:
        it = agent.stream_message("hotels in Paris")
        assert await anext(it)
        await it.aclose()
        assert await asyncio.wait_for(agent.handle_message("budget tips"), 5 * tf)
    finally:
        await d.close()


async def test_state_survives_a_new_directory_on_the_same_file(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    await d.get("u1").handle_message("I want a trip to Tokyo with a budget of $2500, I love food")
    await d.get("u1").handle_message("add the Park Hyatt to my itinerary")
    await d.get("u2").handle_message("trip to Rome")
    await d.close()

    again = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    try:
        s1 = await again.get("u1").state()
        assert s1.destination == "Tokyo" and s1.budget == 2500.0 and s1.preferences == ["food"]
        assert s1.itinerary == [{"kind": "hotel", "name": "Park Hyatt Tokyo", "city": "Tokyo"}]
        assert s1.message_count == 4 and len(s1.recent_messages) == 4
        assert (await again.get("u2").state()).destination == "Rome"
        reply = await again.get("u1").handle_message("show my itinerary")
        assert "Park Hyatt Tokyo" in reply
    finally:
        await again.close()


async def test_listeners_hear_itinerary_changes_in_order(db: Path, tf: float) -> None:
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile=FAST))
    agent = d.get("u1")
    events: list[dict[str, Any]] = []
    got_two = asyncio.Event()

    async def listener(event: dict[str, Any]) -> None:
        events.append(event)
        if len(events) == 2:
            got_two.set()

    async def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    agent.add_listener(broken)
    agent.add_listener(listener)
    try:
        await agent.handle_message("add day trip to Kyoto")
        await agent.handle_message("hotels in Tokyo")  # no itinerary change, no event
        await agent.handle_message("add day trip to Nikko")
        await asyncio.wait_for(got_two.wait(), 5 * tf)
    finally:
        await d.close()
    assert [e["type"] for e in events] == ["itinerary", "itinerary"]
    assert events[0]["agent"] == "u1"
    assert [i["name"] for i in events[1]["itinerary"]] == ["Kyoto", "Nikko"]


async def test_a_full_trace_does_not_stop_the_turn(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=FlakyLLM())
    trace = Trace.start()
    for _ in range(MAX_STAMPS):
        trace.stamp("client.send", "client")
    try:
        sink = RecordingSink()
        await d.get("u1").on_message(sink, "hi", trace=trace, stream=False)
        assert sink.events == [("response", "partial ok")]  # stamps skipped, reply delivered
        assert len(trace.stamps) == MAX_STAMPS
    finally:
        await d.close()


async def test_one_agent_per_id_when_threads_race_for_it(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=FlakyLLM())
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            agents = list(pool.map(lambda _: d.get("shared"), range(64)))
        assert len({id(a) for a in agents}) == 1
    finally:
        await d.close()


class CountingLLM:
    """Counts the turns it is asked for; each can be held until ``release`` is set."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.runs = 0
        self.fail_first = fail_first
        self.release = asyncio.Event()
        self.release.set()

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        self.runs += 1
        await self.release.wait()
        if self.runs <= self.fail_first:
            raise RuntimeError("model exploded")
        yield f"reply {self.runs} "
        yield f"to {messages[-1]['content']}"

    async def aclose(self) -> None:
        return None


async def test_a_second_delivery_of_an_id_gets_the_stored_reply_without_a_run(db: Path) -> None:
    llm = CountingLLM()
    d = LocalAgentDirectory(db, llm=llm)
    try:
        agent = d.get("u1")
        first = await agent.handle_message("hello", msg_id="m1")
        again = await agent.handle_message("hello", msg_id="m1")
        streamed = [c async for c in agent.stream_message("hello", msg_id="m1")]
        sink = RecordingSink()
        await agent.on_message(sink, "hello", trace=None, stream=True, msg_id="m1")
    finally:
        await d.close()
    assert llm.runs == 1
    assert again == first == "reply 1 to hello"
    assert streamed == [first]  # a replay is the whole reply as one chunk
    assert sink.events == [("start", None), ("chunk", first), ("complete", first)]
    assert stored(db, "u1") == [("user", "hello"), ("assistant", first)]


async def test_the_trace_id_keys_a_turn_when_no_message_id_is_given(db: Path) -> None:
    llm = CountingLLM()
    d = LocalAgentDirectory(db, llm=llm)
    trace = Trace.start()
    try:
        agent = d.get("u1")
        await agent.handle_message("hello", trace=trace)
        await agent.handle_message("hello", trace=Trace.from_wire(trace.to_wire()))
        await agent.handle_message("hello")  # no key at all: runs
    finally:
        await d.close()
    assert llm.runs == 2


async def test_deliveries_while_the_turn_runs_wait_for_it_and_never_run_again(
    db: Path, tf: float
) -> None:
    llm = CountingLLM()
    llm.release.clear()
    d = LocalAgentDirectory(db, llm=llm)
    try:
        agent = d.get("u1")
        first = asyncio.create_task(agent.handle_message("hello", msg_id="m1"))
        await asyncio.sleep(0.05 * tf)
        dupes: list[asyncio.Task[Any]] = [
            asyncio.create_task(agent.handle_message("hello", msg_id="m1")) for _ in range(5)
        ]
        sink = RecordingSink()
        dupes.append(
            asyncio.create_task(
                agent.on_message(sink, "hello", trace=None, stream=False, msg_id="m1")
            )
        )
        await asyncio.sleep(0.05 * tf)
        assert not any(t.done() for t in [first, *dupes])
        llm.release.set()
        replies = await asyncio.wait_for(asyncio.gather(first, *dupes), 10 * tf)
    finally:
        await d.close()
    assert llm.runs == 1
    assert set(replies[:-1]) == {"reply 1 to hello"}
    assert sink.events == [("response", "reply 1 to hello")]
    assert [r for r, _ in stored(db, "u1")] == ["user", "assistant"]


async def test_a_duplicate_queued_behind_its_first_delivery_joins_it(db: Path, tf: float) -> None:
    llm = CountingLLM()
    llm.release.clear()
    d = LocalAgentDirectory(db, llm=llm)
    try:
        agent = d.get("u1")
        busy = asyncio.create_task(agent.handle_message("first", msg_id="m0"))
        await asyncio.sleep(0.02 * tf)
        queued = asyncio.create_task(agent.handle_message("hello", msg_id="m1"))
        dupe = asyncio.create_task(agent.handle_message("hello", msg_id="m1"))
        await asyncio.sleep(0.02 * tf)
        llm.release.set()
        got = await asyncio.wait_for(asyncio.gather(busy, queued, dupe), 10 * tf)
    finally:
        await d.close()
    assert llm.runs == 2 and got[1] == got[2]


async def test_a_failed_turn_is_resumed_by_its_next_delivery_without_a_second_user_message(
    db: Path,
) -> None:
    llm = CountingLLM(fail_first=1)
    d = LocalAgentDirectory(db, llm=llm)
    try:
        agent = d.get("u1")
        with pytest.raises(AgentError, match="model exploded"):
            await agent.handle_message("hello", msg_id="m1")
        await agent.handle_message("later", msg_id="m2")
        reply = await agent.handle_message("hello", msg_id="m1")
        again = await agent.handle_message("hello", msg_id="m1")
    finally:
        await d.close()
    assert reply == again == "reply 3 to hello"  # the LLM saw the history up to "hello"
    assert llm.runs == 3
    assert stored(db, "u1") == [
        ("user", "hello"), ("user", "later"), ("assistant", "reply 2 to later"),
        ("assistant", "reply 3 to hello"),
    ]  # fmt: skip


async def test_turn_keys_survive_a_new_directory_on_the_same_file(db: Path) -> None:
    first = LocalAgentDirectory(db, llm=CountingLLM())
    try:
        reply = await first.get("u1").handle_message("hello", msg_id="m1")
    finally:
        await first.close()
    llm = CountingLLM()
    second = LocalAgentDirectory(db, llm=llm)
    try:
        assert await second.get("u1").handle_message("hello", msg_id="m1") == reply
        assert await second.get("u2").handle_message("hello", msg_id="m1") != ""  # per agent
    finally:
        await second.close()
    assert llm.runs == 1


async def test_a_turn_cut_off_by_a_crash_is_resumed_once_after_the_restart(db: Path) -> None:
    # The crash: the user's message (and its key) committed, then the process died.
    first = LocalAgentDirectory(db, llm=CountingLLM())
    try:
        agent = first.get("u1")
        async with contextlib.aclosing(agent.stream_message("hello", msg_id="m1")) as chunks:
            async for _ in chunks:
                break  # never finished: no reply committed
    finally:
        await first.close()
    assert stored(db, "u1") == [("user", "hello")]
    llm = CountingLLM()
    second = LocalAgentDirectory(db, llm=llm)
    try:
        replies = [await second.get("u1").handle_message("hello", msg_id="m1") for _ in range(3)]
    finally:
        await second.close()
    assert llm.runs == 1 and len(set(replies)) == 1
    assert stored(db, "u1") == [("user", "hello"), ("assistant", replies[0])]


async def test_expired_turn_keys_are_pruned_from_the_store(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=CountingLLM())
    d.store.turn_retention_s = 0.0
    try:
        agent = d.get("u1")
        for i in range(140):  # unstreamed: one commit a turn, 140 commits, one sweep
            await agent.handle_message(f"m{i}", msg_id=f"m{i}")
    finally:
        await d.close()
    conn = sqlite3.connect(db)
    try:
        (left,) = conn.execute("SELECT COUNT(*) FROM turns").fetchone()
    finally:
        conn.close()
    assert left < 140


async def test_memory_holds_the_newest_turn_keys_and_the_store_answers_for_older_ones(
    db: Path,
) -> None:
    llm = CountingLLM()
    d = LocalAgentDirectory(db, llm=llm, turn_cache=4)
    try:
        agent = d.get("u1")
        replies = [await agent.handle_message(f"q{i}", msg_id=f"m{i}") for i in range(10)]
        assert agent.turn_keys_held == 4
        assert llm.runs == 10
        # m0 left memory long ago: the store still knows it, so it is a replay, not a run.
        assert await agent.handle_message("q0", msg_id="m0") == replies[0]
        assert await agent.handle_message("q9", msg_id="m9") == replies[9]  # held in memory
        assert llm.runs == 10
        await agent.handle_message("q10", msg_id="m10")  # a new id still runs
        assert llm.runs == 11 and agent.turn_keys_held == 4
    finally:
        await d.close()
    # A new process loads only the newest keys, and still finds the oldest in the store.
    llm2 = CountingLLM()
    d2 = LocalAgentDirectory(db, llm=llm2, turn_cache=4)
    try:
        agent = d2.get("u1")
        assert await agent.handle_message("q1", msg_id="m1") == replies[1]
        assert agent.turn_keys_held == 4 and llm2.runs == 0
        await agent.handle_message("q11", msg_id="m11")
        assert llm2.runs == 1
    finally:
        await d2.close()
    assert len(stored(db, "u1")) == 2 * 12  # every turn once: 12 questions, 12 replies


async def test_a_key_past_the_retention_is_new_whether_held_in_memory_or_not(db: Path) -> None:
    llm = CountingLLM()
    d = LocalAgentDirectory(db, llm=llm, turn_cache=2)
    try:
        agent = d.get("u1")
        for i in range(3):
            await agent.handle_message(f"q{i}", msg_id=f"m{i}")
        d.store.turn_retention_s = 0.0
        await agent.handle_message("q2", msg_id="m2")  # held in memory, but expired
        await agent.handle_message("q0", msg_id="m0")  # only in the store, and expired
        assert llm.runs == 5
    finally:
        await d.close()


async def test_an_unstreamed_turn_is_one_commit_with_question_reply_and_key(db: Path) -> None:
    llm = CountingLLM()
    d = LocalAgentDirectory(db, llm=llm)
    try:
        agent = d.get("u1")
        await agent.handle_message("warm up", msg_id="m0")  # the agent's row exists
        before = d.store._commits
        reply = await agent.handle_message("hello", msg_id="m1")
        after = d.store._commits
        again = await agent.handle_message("hello", msg_id="m1")  # a redelivery replays
    finally:
        await d.close()
    assert after - before == 1
    assert again == reply and llm.runs == 2
    assert stored(db, "u1")[-2:] == [("user", "hello"), ("assistant", reply)]
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT state, message, reply FROM turns WHERE agent = 'u1' AND msg_id = 'm1'"
        ).fetchone()
    finally:
        conn.close()
    assert row == ("done", "hello", reply)


async def test_a_streamed_turn_commits_its_question_before_its_first_chunk(db: Path) -> None:
    d = LocalAgentDirectory(db, llm=CountingLLM())
    try:
        agent = d.get("u1")
        async with contextlib.aclosing(agent.stream_message("hello", msg_id="m1")) as chunks:
            async for _ in chunks:
                # the first chunk has left: the question (and its key) are durable already
                assert stored(db, "u1") == [("user", "hello")]
                break
    finally:
        await d.close()
