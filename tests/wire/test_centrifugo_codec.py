"""The Centrifugo JSON codec and channel permissions: frames in, messages and replies out."""

from __future__ import annotations

import json

import pytest

from travelagent.wire import centrifugo as cf


def test_frame_with_several_commands_decodes_each_line_in_order() -> None:
    frame = '{"id":1,"connect":{"token":"t"}}\n{"id":2,"subscribe":{"channel":"room:a"}}\n{}'
    msgs = cf.decode_frame(frame)
    assert [type(m) for m in msgs] == [cf.Command, cf.Command, cf.Pong]
    assert msgs[0] == cf.Command(1, "connect", {"token": "t"})
    assert msgs[1] == cf.Command(2, "subscribe", {"channel": "room:a"})


def test_blank_lines_and_trailing_newline_are_ignored() -> None:
    assert len(cf.decode_frame('{"id":1,"presence":{"channel":"x"}}\n\n')) == 1


@pytest.mark.parametrize("line", ["not json", "[1,2]", '{"id":-1,"publish":{}}', '{"id":"x"}'])
def test_line_that_is_not_a_command_object_asks_for_bad_request_disconnect(line: str) -> None:
    with pytest.raises(cf.ProtocolError) as info:
        cf.decode_frame(line)
    assert info.value.code == cf.DISCONNECT_BAD_REQUEST == 3501


def test_command_without_method_gets_method_not_found() -> None:
    [m] = cf.decode_frame('{"id":7,"frobnicate":{}}')
    assert m == cf.BadCommand(7, cf.ERROR_METHOD_NOT_FOUND, "method not found")


def test_unsupported_known_method_gets_method_not_found() -> None:
    [m] = cf.decode_frame('{"id":7,"rpc":{"method":"x"}}')
    assert isinstance(m, cf.BadCommand) and m.code == 104


def test_command_with_two_methods_or_non_object_params_gets_bad_request() -> None:
    [a, b] = cf.decode_frame('{"id":1,"publish":{},"history":{}}\n{"id":2,"publish":[1]}')
    assert isinstance(a, cf.BadCommand) and a.code == cf.ERROR_BAD_REQUEST == 107
    assert isinstance(b, cf.BadCommand) and b.code == 107


def test_command_without_id_cannot_be_answered_and_is_marked_for_disconnect() -> None:
    [m] = cf.decode_frame('{"publish":{"channel":"a","data":1}}')
    assert isinstance(m, cf.BadCommand) and m.id == 0


def test_replies_and_pushes_encode_as_newline_separated_json() -> None:
    frame = cf.encode(
        [
            cf.reply(1, "publish"),
            cf.error_reply(2, cf.ERROR_PERMISSION_DENIED),
            cf.pub_push("room:a", cf.publication({"x": 1}, offset=3)),
            cf.PING,
        ]
    )
    lines = [json.loads(x) for x in frame.split("\n")]
    assert lines[0] == {"id": 1, "publish": {}}
    assert lines[1] == {"id": 2, "error": {"code": 103, "message": "permission denied"}}
    assert lines[2] == {"push": {"channel": "room:a", "pub": {"data": {"x": 1}, "offset": 3}}}
    assert lines[3] == {}


def test_temporary_errors_are_flagged_temporary() -> None:
    assert cf.ReplyError(cf.ERROR_INTERNAL).to_wire()["temporary"] is True
    assert "temporary" not in cf.ReplyError(cf.ERROR_BAD_REQUEST).to_wire()


def test_subscribe_parameters_are_validated() -> None:
    req = cf.parse_subscribe({"channel": "room:a", "recover": True, "offset": "5", "epoch": "e"})
    assert (req.recover, req.offset, req.epoch) == (True, 5, "e")
    for bad in ({}, {"channel": ""}, {"channel": "a", "offset": -1}, {"channel": "a", "epoch": 3}):
        with pytest.raises(cf.ReplyError) as info:
            cf.parse_subscribe(bad)
        assert info.value.code == 107


def test_history_parameters_are_validated() -> None:
    req = cf.parse_history({"channel": "a", "limit": 5, "since": {"offset": 2, "epoch": "e"}})
    assert (req.limit, req.since) == (5, (2, "e"))
    with pytest.raises(cf.ReplyError):
        cf.parse_history({"channel": "a", "since": {"offset": "x"}})


def test_user_may_use_only_own_travel_channel() -> None:
    g = cf.Grants("alice")
    assert cf.channel_permission(g, "travel:alice") is None
    assert cf.channel_permission(g, "travel:bob") == cf.ERROR_PERMISSION_DENIED
    assert cf.channel_permission(g, "travel:") == cf.ERROR_PERMISSION_DENIED


def test_every_room_is_allowed_by_default_and_other_namespaces_are_denied() -> None:
    g = cf.Grants("alice")
    assert cf.channel_permission(g, "room:lobby") is None
    assert cf.channel_permission(g, "news:x") == 103
    assert cf.channel_permission(g, "plain") == 103


def test_room_allow_list_and_token_claim_both_restrict() -> None:
    only_config = cf.Grants.build("a", config_rooms={"lobby", "paris"})
    assert cf.channel_permission(only_config, "room:lobby") is None
    assert cf.channel_permission(only_config, "room:rome") == 103
    only_claim = cf.Grants.build("a", config_rooms=None, token_rooms=["rome"])
    assert cf.channel_permission(only_claim, "room:rome") is None
    assert cf.channel_permission(only_claim, "room:lobby") == 103
    both = cf.Grants.build("a", config_rooms={"lobby", "paris"}, token_rooms=["paris", "rome"])
    assert both.rooms == frozenset({"paris"})
