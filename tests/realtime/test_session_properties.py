"""Properties of the Centrifugo client session: any input is answered or closes, never raises.

A bug inside a command handler is caught and answered with error 100 so the session carries
on; these tests treat such a reply as a failure, so the catch-all cannot hide one.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES

from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.history import History
from travelagent.realtime.hub import Hub
from travelagent.realtime.session import (
    ArmExpiry,
    ClientSession,
    CloseConnection,
    SendWebhook,
    StartPinger,
)
from travelagent.wire import centrifugo as cf

SECRET = "property-secret-that-is-long-enough-for-hs256"
NOW_S = 1_800_000_000.0
CHANNELS = st.one_of(
    st.sampled_from(["travel:u1", "travel:u2", "room:lobby", "room:", "news", ""]), JSON_VALUES
)


def session(hub: Hub | None = None) -> ClientSession:
    return ClientSession(
        hub or Hub(history=History()),
        RealtimeConfig(jwt_secret=SECRET, ping_interval_s=25),
        webhook_room=lambda pending: pending < 3,
        clock_s=lambda: NOW_S,
        client_id="c-1",
    )


def connected(hub: Hub | None = None) -> ClientSession:
    s = session(hub)
    token = jwt.encode({"sub": "u1", "exp": int(NOW_S) + 60}, SECRET, algorithm="HS256")
    s.receive_text(cf.command(1, "connect", {"token": token}), 0)
    s.data_to_send()
    s.actions_to_do()
    return s


def params() -> st.SearchStrategy[dict[str, Any]]:
    """Parameters near what each method reads, with any part arbitrary."""
    return st.fixed_dictionaries(
        {},
        optional={
            "channel": CHANNELS,
            "data": JSON_VALUES,
            "recover": JSON_VALUES,
            "offset": st.one_of(st.integers(min_value=-2, max_value=2**64), JSON_VALUES),
            "epoch": JSON_VALUES,
            "flag": JSON_VALUES,
            "join_leave": JSON_VALUES,
            "limit": st.one_of(st.integers(min_value=-2, max_value=2**64), JSON_VALUES),
            "since": st.one_of(
                st.fixed_dictionaries({"offset": JSON_VALUES, "epoch": JSON_VALUES}), JSON_VALUES
            ),
            "reverse": JSON_VALUES,
            "token": JSON_VALUES,
        },
    )


def lines() -> st.SearchStrategy[str]:
    commands = st.tuples(
        st.integers(min_value=2, max_value=2**31),
        st.sampled_from(sorted(cf.SUPPORTED_METHODS)),
        st.one_of(params(), JSON_OBJECTS),
    ).map(lambda c: cf.command(*c))
    return st.one_of(
        commands,
        commands,
        commands,
        st.just("{}"),
        st.fixed_dictionaries({"id": JSON_VALUES}, optional={"publish": JSON_VALUES}).map(
            json.dumps
        ),
        st.text(max_size=20),
    )


def served(s: ClientSession, frame: str) -> tuple[list[dict[str, Any]], list[Any]]:
    s.receive_text(frame, 123)
    out = [json.loads(line) for line in s.data_to_send()]
    for msg in out:
        assert "error" not in msg or msg["error"]["code"] != cf.ERROR_INTERNAL, msg
    return out, s.actions_to_do()


@given(st.lists(st.lists(lines(), min_size=1, max_size=3).map("\n".join), max_size=5))
def test_any_frames_after_connect_get_replies_or_a_close_never_an_exception(
    frames: list[str],
) -> None:
    s = connected()
    for frame in frames:
        if s.closing:
            break
        out, actions = served(s, frame)
        for a in actions:
            assert isinstance(a, SendWebhook | CloseConnection | ArmExpiry | StartPinger)
            if isinstance(a, CloseConnection):
                assert a.code in cf.DISCONNECT_REASONS and a.reason
        replies = [m for m in out if "id" in m]
        assert all(isinstance(m["id"], int) and m["id"] > 0 for m in replies)
    s.connection_lost()


@given(st.lists(lines(), min_size=1, max_size=4).map("\n".join))
def test_any_frame_before_connect_is_answered_or_closes(frame: str) -> None:
    s = session()
    out, actions = served(s, frame)
    assert s.grants is None  # no token here is signed with the secret
    assert all("error" in m for m in out if "id" in m)
    assert all(isinstance(a, CloseConnection) for a in actions)


@given(JSON_VALUES)
def test_a_publication_reaches_a_subscriber_as_it_was_published(data: Any) -> None:
    hub = Hub(history=History())
    reader, writer = connected(hub), connected(hub)
    served(reader, cf.command(2, "subscribe", {"channel": "room:lobby"}))
    out, _ = served(writer, cf.command(2, "publish", {"channel": "room:lobby", "data": data}))
    assert out == [{"id": 2, "publish": {}}]
    pushes = [m for m in (json.loads(x) for x in reader.data_to_send()) if "push" in m]
    pubs = [p["push"]["pub"] for p in pushes if "pub" in p["push"]]
    assert [p["data"] for p in pubs] == [data]
    for line in [cf.dumps(p) for p in pushes]:
        line.encode()  # what the adapter writes must encode as UTF-8


@given(st.integers(min_value=2, max_value=2**31), params())
def test_every_command_with_an_id_gets_exactly_one_reply(cmd_id: int, p: dict[str, Any]) -> None:
    for method in sorted(cf.SUPPORTED_METHODS - {"connect"}):
        s = connected()
        out, _ = served(s, cf.command(cmd_id, method, p))
        replies = [m for m in out if m.get("id") == cmd_id]
        assert len(replies) == 1 and (method in replies[0] or "error" in replies[0])
