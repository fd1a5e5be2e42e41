"""Reading py-spy's collapsed stacks into the profile's top entries (no py-spy needed)."""

from __future__ import annotations

from travelagent.bench.profile import format_top, frame_key, top_frames

RAW = """\
<module> (travelagent/__main__.py:4);BaseEventLoop.run_forever (asyncio/base_events.py:608);EpollSelector.select (selectors.py:468) 10
<module> (travelagent/__main__.py:4);BaseEventLoop.run_forever (asyncio/base_events.py:608);TravelAgent._turn (travelagent/agent/travel_agent.py:90);deepcopy (copy.py:128) 6
<module> (travelagent/__main__.py:4);BaseEventLoop.run_forever (asyncio/base_events.py:608);TravelAgent._turn (travelagent/agent/travel_agent.py:95) 4
Thread._bootstrap (threading.py:995);_worker (concurrent/futures/thread.py:83);AgentStore._commit (travelagent/agent/store.py:201) 20
garbage line
"""  # noqa: E501


def test_frames_are_counted_per_function_not_per_line() -> None:
    assert frame_key(" deepcopy (copy.py:128) ") == "deepcopy (copy.py)"
    p = top_frames(RAW)
    assert p.total == 40
    assert p.own[0] == ("AgentStore._commit (travelagent/agent/store.py)", 20)
    assert dict(p.inclusive)["TravelAgent._turn (travelagent/agent/travel_agent.py)"] == 10
    assert dict(p.where) == {"thread pool": 20, "event loop, waiting in select": 10,
                             "event loop, busy": 10}  # fmt: skip
    assert [f for f, _ in p.project] == [
        "AgentStore._commit (travelagent/agent/store.py)",
        "TravelAgent._turn (travelagent/agent/travel_agent.py)",
    ]  # entry points (<module>, main) are on every stack and left out


def test_the_report_gives_percentages_of_all_samples() -> None:
    text = format_top(top_frames(RAW))
    assert "40 samples" in text and "  50.0  AgentStore._commit" in text
