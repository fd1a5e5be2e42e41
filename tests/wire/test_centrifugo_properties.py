"""Properties of the Centrifugo JSON codec: commands and replies round trip; nothing crashes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON_OBJECTS, JSON_VALUES, TEXT, deep_nesting

from travelagent.wire import centrifugo as cf
from travelagent.wire import ndjson
from travelagent.wire import server_api as api

IDS = st.integers(min_value=1, max_value=2**53)
METHOD_PARAMS = st.tuples(st.sampled_from(sorted(cf.SUPPORTED_METHODS)), JSON_OBJECTS)


def command_lines() -> st.SearchStrategy[str]:
    """Lines a client might send: commands with odd ids, methods and params, pongs, junk."""
    commands = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(IDS, JSON_VALUES),
            **{m: JSON_VALUES for m in cf.METHODS},
        },
    )
    return st.one_of(commands.map(json.dumps), JSON_VALUES.map(json.dumps), st.text(max_size=40))


@given(IDS, METHOD_PARAMS)
def test_a_client_command_decodes_to_itself(cmd_id: int, mp: tuple[str, dict[str, Any]]) -> None:
    method, params = mp
    [msg] = cf.decode_frame(cf.command(cmd_id, method, params))
    assert msg == cf.Command(cmd_id, method, params)


@given(st.lists(st.tuples(IDS, METHOD_PARAMS), min_size=1, max_size=3))
def test_commands_joined_in_one_frame_decode_in_order(cmds: list[Any]) -> None:
    frame = "\n".join(cf.command(i, m, p) for i, (m, p) in cmds)
    assert cf.decode_frame(frame) == [cf.Command(i, m, p) for i, (m, p) in cmds]


@given(st.lists(command_lines(), min_size=1, max_size=4).map("\n".join))
def test_any_frame_decodes_to_messages_or_a_protocol_error(frame: str) -> None:
    try:
        messages = cf.decode_frame(frame)
    except cf.ProtocolError as err:
        assert err.code == cf.DISCONNECT_BAD_REQUEST and err.reason
        return
    for m in messages:
        if isinstance(m, cf.BadCommand):
            assert m.code in cf.ERROR_MESSAGES and m.message
        elif isinstance(m, cf.Command):
            assert m.id > 0 and m.method in cf.SUPPORTED_METHODS and isinstance(m.params, dict)
        else:
            assert isinstance(m, cf.Pong)


@given(deep_nesting())
def test_a_frame_nested_too_deeply_is_a_protocol_error(frame: str) -> None:
    with pytest.raises(cf.ProtocolError):
        cf.decode_frame(frame)


@given(JSON_OBJECTS)
def test_subscribe_and_history_params_parse_or_get_error_107(params: dict[str, Any]) -> None:
    for parse in (cf.parse_subscribe, cf.parse_history):
        try:
            req = parse(params)
        except cf.ReplyError as err:
            assert err.code == cf.ERROR_BAD_REQUEST and err.message.startswith("bad request")
        else:
            assert isinstance(req.channel, str) and 0 < len(req.channel) <= cf.MAX_CHANNEL_CHARS


@given(IDS, st.sampled_from(sorted(cf.SUPPORTED_METHODS)), JSON_OBJECTS)
def test_a_reply_round_trips_to_the_client(cmd_id: int, method: str, result: Any) -> None:
    [reply] = cf.decode_server_frame(cf.encode([cf.reply(cmd_id, method, result)]))
    assert isinstance(reply, cf.ServerReply) and reply.id == cmd_id
    assert reply.error is None and reply.result(method) == result


@given(IDS, st.sampled_from(sorted(cf.ERROR_MESSAGES)), TEXT)
def test_an_error_reply_round_trips_to_the_client(cmd_id: int, code: int, message: str) -> None:
    [reply] = cf.decode_server_frame(cf.dumps(cf.error_reply(cmd_id, code, message)))
    assert isinstance(reply, cf.ServerReply)
    assert reply.error == (code, message or cf.ERROR_MESSAGES[code])


@given(TEXT.filter(bool), JSON_VALUES, st.integers(min_value=0, max_value=2**53), TEXT, TEXT)
def test_pushes_round_trip_to_the_client(
    channel: str, data: Any, offset: int, client: str, user: str
) -> None:
    info = cf.client_info(client, user)
    pushes = [
        cf.pub_push(channel, cf.publication(data, offset=offset, info=info)),
        cf.join_push(channel, info),
        cf.leave_push(channel, info),
    ]
    decoded = cf.decode_server_frame(cf.encode(pushes).encode())
    assert [(p.kind, p.channel) for p in decoded if isinstance(p, cf.ServerPush)] == [
        ("pub", channel),
        ("join", channel),
        ("leave", channel),
    ]
    pub = decoded[0]
    assert isinstance(pub, cf.ServerPush) and pub.body["data"] == data


@given(st.one_of(st.text(), st.binary(), deep_nesting(), JSON_VALUES.map(json.dumps)))
def test_any_server_frame_decodes_without_raising(text: str | bytes) -> None:
    for msg in cf.decode_server_frame(text):
        if isinstance(msg, cf.ServerReply):
            error = msg.error
            assert error is None or (isinstance(error[0], int) and isinstance(error[1], str))


@given(st.one_of(st.text(), deep_nesting(), JSON_VALUES.map(json.dumps)))
def test_any_publisher_socket_line_is_a_command_or_an_error_reply(line: str) -> None:
    try:
        cmd = api.parse_socket_command(line)
    except api.SocketCommandError as err:
        assert isinstance(err.reply["id"], int) and err.reply["error"]["code"] == 107
    else:
        assert isinstance(cmd.id, int) and isinstance(cmd.method, str)


@given(IDS, st.sampled_from(api.API_METHODS), JSON_OBJECTS)
def test_a_publisher_socket_command_round_trips(
    cmd_id: int, method: str, params: dict[str, Any]
) -> None:
    line = api.socket_command(cmd_id, method, params)
    assert api.parse_socket_command(line) == api.SocketCommand(cmd_id, method, params)
    replies = [api.socket_result(cmd_id, params), api.socket_error(cmd_id + 1, {"code": 107})]
    got = api.decode_socket_replies(ndjson.join(replies))
    assert [(r.id, r.result, r.error) for r in got] == [
        (cmd_id, params, None),
        (cmd_id + 1, {}, (107, "")),
    ]


@given(st.dictionaries(st.sampled_from(["X-API-Key", "Authorization", "Other"]), TEXT), TEXT)
def test_api_key_check_never_raises(headers: dict[str, str], key: str) -> None:
    assert api.authorized(headers, key) in (True, False)


@given(st.text(min_size=1))
def test_the_api_key_is_accepted_exactly(key: str) -> None:
    assert api.authorized({"X-API-Key": key}, key)
    assert api.authorized({"Authorization": f"apikey {key}"}, key) is (key == key.strip())
    assert not api.authorized({"X-API-Key": key + "x"}, key)
