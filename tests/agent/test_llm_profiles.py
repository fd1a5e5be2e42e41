from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from travelagent.agent.llm import list_profiles, make_llm
from travelagent.agent.llm.profiles import (
    PROFILES,
    LatencyProfile,
    count_tokens,
    get_profile,
    message_seed,
    plan_ms,
    plan_span_ms,
    tokenize,
)
from travelagent.agent.llm.simulated import SimulatedLLM
from travelagent.agent.state import TripState, system_prompt
from travelagent.wire.trace import Trace, now_ns


def msgs(agent: str, index: int, text: str) -> list[dict[str, str]]:
    """The request the agent builds (its real system prompt) for ``text`` at ``index``."""
    return [
        {"role": "system", "content": system_prompt(agent, TripState(message_count=index))},
        {"role": "user", "content": text},
    ]


def test_profiles_are_listed_and_include_instant_note_and_two_real_model_likes() -> None:
    names = list_profiles()
    assert {"instant", "note", "gpt-4o-mini-like", "llama-8b-local-like"} <= set(names)
    assert all(PROFILES[n].source for n in names)


def test_unknown_profile_is_a_value_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid profiles: instant, note"):
        get_profile("gpt-9")
    with pytest.raises(ValueError, match="valid profiles"):
        make_llm(profile="gpt-9")


def test_make_llm_rejects_unknown_kinds_and_openai_without_a_url() -> None:
    with pytest.raises(ValueError, match="valid kinds"):
        make_llm("magic")
    with pytest.raises(ValueError, match="base URL"):
        make_llm("openai")


@pytest.mark.parametrize("text", ["", "hello world", "Flights: LHR->HND, $715!\n- 14h53 ünïcode_x"])
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text


def test_same_seed_and_profile_give_the_same_timings_and_another_seed_differs() -> None:
    m = msgs("u1", 3, "hotels in Tokyo")
    a = SimulatedLLM(profile="note", seed=7).plan(m)
    assert a == SimulatedLLM(profile="note", seed=7).plan(m)
    assert a[1] != SimulatedLLM(profile="note", seed=8).plan(m)[1]
    assert a[0] == SimulatedLLM(profile="note", seed=8).plan(m)[0]  # same words, other timing


def test_draws_are_per_message_and_the_same_for_agents_living_the_same_conversation() -> None:
    llm = SimulatedLLM(profile="note", seed=7)
    base = llm.plan(msgs("u1", 3, "hi"))[1]
    # paired cells: user k of two cells has agents of different names, same conversation
    assert llm.plan(msgs("cell-a-123-u1", 3, "hi"))[1] == base
    assert llm.plan(msgs("u1", 5, "hi"))[1] != base
    assert llm.plan(msgs("u1", 3, "hello"))[1] != base
    assert message_seed(7, msgs("u1", 3, "hi")) == message_seed(7, msgs("u1", 3, "hi"))


@pytest.mark.parametrize("name", [n for n in PROFILES if n != "instant"])
def test_timing_plans_stay_inside_the_profile_ranges(name: str) -> None:
    p = PROFILES[name]
    for seed in range(50):
        due = plan_ms(p, random.Random(seed), 40, tool_call=seed % 2 == 0)
        tool = p.tool_call_ms if seed % 2 == 0 else (0.0, 0.0)
        assert p.ttft_ms[0] + tool[0] <= due[0] <= p.ttft_ms[1] + tool[1]
        gaps = [b - a for a, b in itertools.pairwise(due)]
        assert all(p.token_interval_ms[0] <= g <= p.token_interval_ms[1] for g in gaps)


def test_note_profile_finishes_a_short_answer_within_the_notes_range() -> None:
    p = get_profile("note")
    for seed in range(200):
        due = plan_ms(p, random.Random(seed), 60, tool_call=False)  # a ~240-character answer
        assert 40 <= due[-1] <= 180


async def test_stream_chunks_join_to_the_planned_reply_and_are_stamped(tf: float) -> None:
    fast = LatencyProfile("test-fast", (20, 20), (1, 1), (0, 0), "test")
    llm = SimulatedLLM(profile=fast)
    m = msgs("u1", 0, "when should I visit Rome?")
    tokens, due = llm.plan(m)
    trace = Trace.start()
    t0 = now_ns()
    chunks = [c async for c in llm.stream(m, trace=trace, process="agents")]
    assert chunks == tokens and "".join(chunks).startswith("The best months for Rome")
    names = [(n, p) for n, _, p in trace.stamps]
    assert names == [("llm.first", "agents"), ("llm.done", "agents")]
    first, done = trace.stamps[0][1], trace.stamps[1][1]
    # Tokens are never early: each waits for its due time from the start of the stream (a
    # late first token on a busy machine does not make the last one early).
    assert (first - t0) / 1e6 >= due[0] - 1
    assert (done - t0) / 1e6 >= due[-1] - 1  # the schedule is honoured, not skipped
    assert (done - t0) / 1e6 < due[-1] + 200 * tf


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_span_of_a_plan_is_its_first_and_last_due_time_bit_for_bit(name: str) -> None:
    p = PROFILES[name]
    for seed in range(40):
        n, tool = 1 + seed * 7, seed % 3 == 0
        due = plan_ms(p, random.Random(seed), n, tool_call=tool)
        assert len(due) == n
        assert plan_span_ms(p, random.Random(seed), n, tool_call=tool) == (due[0], due[-1])
    assert plan_ms(p, random.Random(1), 0, tool_call=False) == []


@pytest.mark.parametrize(
    "text", ["when should I visit Rome?", "flights from London to Tokyo on 2026-12-10", "x"]
)
async def test_complete_is_the_stream_joined_with_the_same_stamps_and_schedule(
    text: str, tf: float
) -> None:
    fast = LatencyProfile("test-fast", (20, 20), (0.5, 0.5), (5, 5), "test")
    llm = SimulatedLLM(profile=fast, seed=3)
    m = msgs("u1", 2, text)
    tokens, due = llm.plan(m)
    assert count_tokens("".join(tokens)) == len(tokens)
    streamed, whole = Trace.start(), Trace.start()
    chunks = [c async for c in llm.stream(m, trace=streamed, process="worker")]
    t0 = now_ns()
    reply = await llm.complete(m, trace=whole, process="worker")
    assert reply == "".join(chunks) == "".join(tokens)
    assert [(n, p) for n, _, p in whole.stamps] == [(n, p) for n, _, p in streamed.stamps]
    first, done = whole.stamps[0][1], whole.stamps[1][1]
    assert (first - t0) / 1e6 >= due[0] - 1  # never early: the same due times as the stream
    assert (done - t0) / 1e6 >= due[-1] - 1
    assert (done - t0) / 1e6 < due[-1] + 200 * tf


async def test_an_instant_complete_does_not_pass_through_the_event_loop_per_token() -> None:
    llm = SimulatedLLM(profile="instant")
    m = msgs("u1", 0, "flights from London to Tokyo on 2026-12-10")
    assert len(llm.plan(m)[0]) > 20
    ticks = 0

    async def count() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)
    ticks = 0
    stamped = Trace.start()
    await llm.complete(m, trace=stamped, process="worker")
    counter.cancel()
    assert ticks == 0 and [n for n, _, _ in stamped.stamps] == ["llm.first", "llm.done"]
