"""The turn-key rules (agent/turns.py), without an agent, a store or a socket."""

from __future__ import annotations

import pytest

from travelagent.agent import turns
from travelagent.agent.state import TripState
from travelagent.agent.turns import TurnRecord, decide, expired, history_until


def record(state: turns.TurnState, user_seq: int = 0, t_ns: int = 0) -> TurnRecord:
    return TurnRecord(state, user_seq, t_ns)


def test_a_new_key_runs_the_turn() -> None:
    assert decide(None, live=False) == "run"


def test_a_done_key_replays_its_stored_reply() -> None:
    assert decide(record("done"), live=False) == "replay"


def test_a_started_key_without_a_live_run_resumes_instead_of_running_again() -> None:
    assert decide(record("started"), live=False) == "resume"


@pytest.mark.parametrize("state", [None, "started", "done"])
def test_a_key_with_a_live_run_always_joins_it(state: turns.TurnState | None) -> None:
    assert decide(None if state is None else record(state), live=True) == "join"


def test_the_table_covers_every_state_and_never_runs_a_known_key() -> None:
    assert set(turns.DELIVERY) == {
        (s, live) for s in ("new", "started", "done") for live in (True, False)
    }
    assert [k for k, action in turns.DELIVERY.items() if action == "run"] == [("new", False)]


def conversation(n: int, *, kept: int) -> TripState:
    """A state after ``n`` messages of which the last ``kept`` are recent."""
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(n)]
    return TripState(recent_messages=msgs[n - kept :], message_count=n)


def test_a_resumed_turn_sees_the_history_up_to_its_own_message() -> None:
    state = conversation(6, kept=6)  # m4 is a later user message
    cut = history_until(state, 2, "m2")
    assert [m["content"] for m in cut.recent_messages] == ["m0", "m1", "m2"]
    assert state.recent_messages[-1]["content"] == "m5"  # the state itself is untouched


def test_a_resumed_turn_whose_message_is_the_last_sees_everything() -> None:
    state = conversation(5, kept=3)
    assert history_until(state, 4, "m4").recent_messages == state.recent_messages


def test_a_resumed_turn_whose_message_is_no_longer_recent_sees_it_alone() -> None:
    state = conversation(10, kept=4)
    cut = history_until(state, 2, "m2")
    assert cut.recent_messages == [{"role": "user", "content": "m2"}]


def test_keys_expire_after_the_retention() -> None:
    r = record("done", t_ns=1_000_000_000)
    assert not expired(r, now_ns=1_000_000_000 + 299 * 10**9, retention_s=300)
    assert expired(r, now_ns=1_000_000_000 + 301 * 10**9, retention_s=300)


def test_a_key_outlives_every_redelivery_a_standard_webhooks_sender_makes() -> None:
    # each retry is signed anew, so only the retention bounds how late a redelivery finds its key
    from travelagent.wire.webhooks import STANDARD_RETRY_SCHEDULE_S

    assert turns.DEFAULT_RETENTION_S > sum(STANDARD_RETRY_SCHEDULE_S)
    last_retry_ns = int(sum(STANDARD_RETRY_SCHEDULE_S) * 1e9)
    record = turns.TurnRecord(turns.DONE, 0, 0)
    assert not turns.expired(record, now_ns=last_retry_ns, retention_s=turns.DEFAULT_RETENTION_S)
