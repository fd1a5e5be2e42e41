"""What a client does after a resume or a drop, as pure bookkeeping (client/replies.py)."""

from __future__ import annotations

from travelagent.client.replies import (
    PendingSet,
    ReplyEvent,
    may_reconnect,
    plan_after_resume,
    reconnect_delay_s,
    start_message,
)


def test_what_was_not_replayed_is_resent_whatever_its_state() -> None:
    plan = plan_after_resume(
        {"m1": "done", "m2": "started", "m3": "new"}, ["m1", "m2", "m3"], ["m2", "m3"], resend=True
    )
    assert plan.resend == ["m2", "m3"] and plan.lost == []


def test_lost_only_for_an_id_the_server_says_it_never_received_when_not_resending() -> None:
    states = {"m2": "started", "m3": "new"}
    plan = plan_after_resume(states, ["m2", "m3", "m4"], ["m2", "m3", "m4"], resend=False)
    assert plan.lost == ["m3"] and plan.resend == []  # m4 was not asked about: not confirmed


def test_a_server_that_does_not_resume_gets_everything_resent() -> None:
    assert plan_after_resume(None, ["m1", "m2"], ["m2"], resend=True).resend == ["m2"]
    assert plan_after_resume(None, ["m1"], ["m1"], resend=False).lost == []


def test_a_message_cut_off_by_a_drop_expires_lost_and_one_that_was_not_as_timeout() -> None:
    pending = PendingSet()
    cut = start_message(run="", cell="", arch="realtime", publish="", stream=None, user_id="u",
                        timeout_s=0.0)  # fmt: skip
    pending.add(cut)
    assert pending.cut_off() == [cut.record.msg_id]
    late = start_message(run="", cell="", arch="realtime", publish="", stream=None, user_id="u",
                         timeout_s=0.0)  # fmt: skip
    pending.add(late)
    recs = {r.msg_id: r for r in pending.expire(t_ns=late.deadline_ns + 1)}
    assert recs[cut.record.msg_id].status == "lost"
    assert "not recovered" in recs[cut.record.msg_id].error
    assert recs[late.record.msg_id].status == "timeout"


def test_a_cut_off_message_whose_reply_is_recovered_ends_ok() -> None:
    pending = PendingSet()
    p = start_message(run="", cell="", arch="realtime", publish="", stream=None, user_id="u",
                      timeout_s=10.0)  # fmt: skip
    pending.add(p)
    pending.cut_off()
    rec = pending.handle(ReplyEvent("final", p.record.msg_id, 10, text="hi"))
    assert rec is not None and rec.status == "ok" and not pending.is_cut_off(p.record.msg_id)


def test_reconnect_waits_double_and_stop_at_a_cap_and_terminal_codes_forbid_it() -> None:
    waits = [reconnect_delay_s(i) for i in range(8)]
    assert waits[:3] == [0.05, 0.1, 0.2] and waits[-1] == waits[-2] == 1.6
    assert may_reconnect(None) and may_reconnect(3001) and may_reconnect(1006)
    assert not may_reconnect(3500) and not may_reconnect(4501)
