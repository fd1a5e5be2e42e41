"""The webhook route's decisions with no server: headers and body in, a decision out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import encode_event, signed_headers, webhook_event
from travelagent.worker.intake import (
    Deduplicator,
    Redeliver,
    Respond,
    StartTurn,
    WebhookIntake,
)
from travelagent.worker.webhook_log import WebhookLog, log_path

SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldA=="
API_KEY = "test-api-key"
NOW_S = 1_800_000_000


def make(
    *, ack_first: bool = False, stream: bool = True, dedup: Deduplicator[str] | None = None
) -> WebhookIntake[str]:
    return WebhookIntake(
        webhook_secret=lambda: SECRET,
        api_key=lambda: API_KEY,
        tolerance_s=300,
        ack_first=ack_first,
        default_stream=stream,
        process="worker",
        dedup=Deduplicator(clock_s=lambda: NOW_S) if dedup is None else dedup,
        now_s=lambda: NOW_S,
    )


def signed(event: dict[str, Any], webhook_id: str = "msg_1") -> tuple[dict[str, str], bytes]:
    body = encode_event(event)
    return signed_headers(SECRET, body, msg_id=webhook_id, now_s=NOW_S), body


def message(text: str = "hotels in Paris", **kw: Any) -> dict[str, Any]:
    return webhook_event("message", room="travel:u1", user_id="u1", text=text, **kw)


def test_a_signed_message_becomes_a_turn_order_stamped_worker_recv() -> None:
    tr = Trace.start("m1")
    tr.stamp("client.send", "client", t_ns=1)
    d = make().receive(*signed(message(msg_id="m1", trace=tr)), t_recv_ns=9)
    assert isinstance(d, StartTurn) and d.webhook_id == "msg_1" and d.ack is None
    o = d.order
    assert (o.channel, o.user_id, o.msg_id, o.text, o.stream) == (
        "travel:u1", "u1", "m1", "hotels in Paris", True)  # fmt: skip
    assert o.trace.stamps[-1] == ("worker.recv", 9, "worker")
    assert d.stat == "webhook_messages"


def test_ack_first_answers_at_once_with_the_message_id() -> None:
    d = make(ack_first=True).receive(*signed(message(msg_id="m1")), t_recv_ns=1)
    assert isinstance(d, StartTurn) and d.ack == {"ok": True, "accepted": "m1"}


def test_a_bad_signature_is_401_and_counted() -> None:
    headers, body = signed(message())
    d = make().receive(headers, body + b" ", t_recv_ns=1)
    assert isinstance(d, Respond) and d.status == 401 and d.stat == "webhook_unauthorized"
    assert "no matching webhook signature" in d.body["error"]


def test_a_retried_webhook_is_handed_back_with_what_it_started() -> None:
    intake = make()
    request = signed(message())
    first = intake.receive(*request, t_recv_ns=1)
    assert isinstance(first, StartTurn)
    intake.dedup.remember("msg_1", "the turn")
    assert intake.receive(*request, t_recv_ns=2) == Redeliver("the turn")


def test_presence_is_acknowledged_and_remembered_without_a_turn() -> None:
    intake = make()
    event = webhook_event("presence", room="room:lobby", user_id="u1", text="join")
    d = intake.receive(*signed(event), t_recv_ns=1)
    assert d == Respond(200, {"ok": True, "type": "presence"}, "webhook_presence")
    assert intake.receive(*signed(event), t_recv_ns=2) == Redeliver(None)


def test_a_malformed_event_is_400_with_a_reason() -> None:
    headers, body = signed({"type": "other", "room": "travel:u1"})
    d = make().receive(headers, body, t_recv_ns=1)
    assert d == Respond(400, {"error": "'type' must be one of message, presence, connection"},
                        "webhook_bad")  # fmt: skip
    d = make().receive(*signed(message(text=" ")), t_recv_ns=1)
    assert d == Respond(400, {"error": "'message.text' must be a non-empty string"})


def test_the_room_stands_in_for_a_missing_user() -> None:
    event = message()
    del event["userId"]
    d = make().receive(*signed(event), t_recv_ns=1)
    assert isinstance(d, StartTurn) and d.order.user_id == "u1"


def proxy(data: Any, *, key: str = API_KEY, user: str = "u1") -> tuple[dict[str, str], bytes]:
    body = {"client": "c", "user": user, "channel": "travel:u1", "data": data}
    return {"X-API-Key": key}, json.dumps(body).encode()


def test_a_publish_proxy_request_is_recognised_and_answered_allow_while_the_turn_runs() -> None:
    d = make(stream=False).receive(*proxy({"type": "message", "text": "hi", "id": "m1"}),
                                   t_recv_ns=3)  # fmt: skip
    assert isinstance(d, StartTurn) and d.webhook_id is None and d.ack == {"result": {}}
    assert (d.order.msg_id, d.order.stream, d.stat) == ("m1", False, "proxy_messages")
    assert d.order.trace.stamps == [("worker.recv", 3, "worker")]


def test_a_publish_proxy_request_with_a_wrong_key_is_401() -> None:
    d = make().receive(*proxy({"type": "message", "text": "hi"}, key="nope"), t_recv_ns=1)
    assert isinstance(d, Respond) and d.status == 401


def test_a_publication_not_for_the_agent_is_let_through_and_a_bad_one_refused() -> None:
    assert make().receive(*proxy({"type": "chat"}), t_recv_ns=1) == Respond(200, {"result": {}})
    d = make().receive(*proxy({"type": "message", "text": ""}), t_recv_ns=1)
    assert d == Respond(200, {"error": {"code": 107, "message": "bad request"}})


def test_the_deduplicator_forgets_ids_older_than_its_ttl() -> None:
    now = [0.0]
    dedup: Deduplicator[str] = Deduplicator(ttl_s=10.0, clock_s=lambda: now[0])
    dedup.remember("a", "turn")
    assert dedup.get("a") == (True, "turn")
    now[0] = 11.0
    assert dedup.get("a") == (False, None) and len(dedup) == 0


def test_every_id_remembered_is_persisted_once_with_its_time() -> None:
    written: list[tuple[str, float]] = []
    dedup: Deduplicator[str] = Deduplicator(
        clock_s=lambda: 5.0, persist=lambda i, t: written.append((i, t))
    )
    dedup.remember("a", None)
    dedup.remember("a", "the turn")  # what it started, learned later: not a second write
    dedup.remember("b", "turn")
    assert written == [("a", 5.0), ("b", 5.0)]


def test_a_message_an_earlier_process_received_is_started_again_and_counted_as_redelivered() -> (
    None
):
    dedup: Deduplicator[str] = Deduplicator(clock_s=lambda: NOW_S, earlier={"msg_1": NOW_S - 60})
    d = make(dedup=dedup).receive(*signed(message(msg_id="m1")), t_recv_ns=1)
    # Started again under its message id, whose key in the agents' store replays the reply.
    assert isinstance(d, StartTurn) and d.order.msg_id == "m1"
    assert d.stat == "webhook_redelivered"


def test_a_presence_event_an_earlier_process_received_is_a_duplicate() -> None:
    dedup: Deduplicator[str] = Deduplicator(clock_s=lambda: NOW_S, earlier={"msg_1": NOW_S - 60})
    event = webhook_event("presence", room="room:lobby", user_id="u1", text="join")
    d = make(dedup=dedup).receive(*signed(event), t_recv_ns=1)
    assert isinstance(d, Respond) and d.body.get("duplicate") is True
    assert d.stat == "webhook_duplicates"


def test_ids_from_an_earlier_process_expire_with_the_ttl() -> None:
    dedup: Deduplicator[str] = Deduplicator(
        ttl_s=300, clock_s=lambda: NOW_S, earlier={"old": NOW_S - 301, "new": NOW_S - 299}
    )
    assert not dedup.seen_earlier("old") and dedup.seen_earlier("new")


def test_a_forgotten_id_starts_its_turn_afresh() -> None:
    intake = make()
    request = signed(message())
    assert isinstance(intake.receive(*request, t_recv_ns=1), StartTurn)
    intake.dedup.remember("msg_1", "the turn")
    intake.dedup.forget("msg_1")  # its turn could not be journalled
    assert isinstance(intake.receive(*request, t_recv_ns=2), StartTurn)


def test_with_a_durable_lookup_memory_holds_only_the_newest_ids() -> None:
    log: dict[str, float] = {}
    now = [100.0]
    dedup: Deduplicator[str] = Deduplicator(
        ttl_s=60.0,
        clock_s=lambda: now[0],
        persist=log.__setitem__,
        lookup=log.get,
        max_ids=3,
    )
    for i in range(10):
        dedup.remember(f"w{i}", None)
    assert len(dedup) == 3 and len(log) == 10
    assert dedup.get("w0") == (False, None)  # memory let it go ...
    assert dedup.seen_earlier("w0")  # ... the log did not
    assert not dedup.seen_earlier("never")
    now[0] = 161.0
    assert not dedup.seen_earlier("w0")  # past the ttl, even in the log


def test_an_unsettled_turn_is_held_whatever_the_id_cap_until_released() -> None:
    dedup: Deduplicator[str] = Deduplicator(
        clock_s=lambda: 5.0, persist=lambda i, t: None, lookup=lambda i: None, max_ids=1
    )
    dedup.remember("a", "turn a")
    dedup.remember("b", None)
    assert dedup.get("a") == (True, "turn a") and dedup.unsettled == 1
    dedup.release("a")
    assert dedup.get("a") == (False, None) and dedup.unsettled == 0


def test_the_durable_log_answers_for_ids_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    first = WebhookLog(db, ttl_s=900)
    first.record("w1", 5.0)
    first.close()  # finishes the write
    second = WebhookLog(db, ttl_s=900)
    try:
        assert second.lookup("w1") == 5.0 and second.newest() == 5.0
        assert second.lookup("nope") is None
    finally:
        second.close()


def test_the_log_writes_the_ids_of_one_gathering_in_one_transaction(tmp_path: Path) -> None:
    log = WebhookLog(tmp_path / "w.db", ttl_s=900, gather_s=0.2)
    for i in range(50):
        log.record(f"w{i}", 5.0 + i)
    log.close()  # finishes the writes under way
    assert log.batches == 1
    again = WebhookLog(tmp_path / "w.db", ttl_s=900)
    try:
        assert again.newest() == 54.0 and again.lookup("w0") == 5.0
    finally:
        again.close()


def test_the_log_has_a_file_of_its_own_beside_the_workers_database() -> None:
    # Not a table in the agents' file: their writers would wait for each other's lock.
    assert log_path(Path("runs/worker.sqlite3")) == Path("runs/worker.webhooks.sqlite3")
    assert log_path("w.db") == Path("w.webhooks.db")


def test_the_log_is_asked_only_while_it_may_know_an_id_memory_does_not_hold() -> None:
    log: dict[str, float] = {}
    now = [100.0]

    def make_dedup(**kw: Any) -> Deduplicator[str]:
        return Deduplicator(ttl_s=60.0, clock_s=lambda: now[0], persist=log.__setitem__,
                            lookup=log.get, max_ids=3, **kw)  # fmt: skip

    dedup = make_dedup()
    for i in range(3):  # memory holds all of them: a miss is new, the log is not asked
        assert not dedup.seen_earlier(f"w{i}")
        dedup.remember(f"w{i}", None)
    assert dedup.lookups == 0
    dedup.remember("w3", None)  # w0 leaves memory at t=100
    assert dedup.seen_earlier("w0") and dedup.lookups == 1
    now[0] = 161.0  # the ttl has passed since: nothing the log holds is still valid
    assert not dedup.seen_earlier("w0") and dedup.lookups == 1
    # A new process whose log holds an id from 30 s ago asks the log until that ages out.
    fresh = make_dedup(log_until_s=131.0)
    assert fresh.seen_earlier("new") is False and fresh.lookups == 1
    now[0] = 192.0
    assert fresh.seen_earlier("new") is False and fresh.lookups == 1
