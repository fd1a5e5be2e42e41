"""One tiny real trial: the gateway client against the websockets floor in its own process."""

from __future__ import annotations

import pytest

from travelagent.bench import clients
from travelagent.bench.floors import FloorServer, as_reply
from travelagent.bench.trial import closed_loop, paired_closed_loop
from travelagent.wire import gateway as gw


def test_a_floor_reply_is_the_frame_retyped_as_a_response() -> None:
    frame = gw.message_frame("hi", user_id="u", msg_id="m1")
    reply = gw.parse_server_frame(as_reply(frame))
    assert reply.kind is gw.ServerFrameKind.RESPONSE and reply.id == "m1" and reply.text == "hi"


async def test_the_gateway_client_drives_a_floor_in_a_quick_trial() -> None:
    with FloorServer("websockets") as floor:
        res = await closed_loop(clients.gateway(floor.url), case="floor-websockets", clients=2,
                                round_no=0, duration_s=0.2, warmup=1)  # fmt: skip
    assert res.failed == 0 and res.ok > 10
    assert 0 < res.p50_ms <= res.p99_ms and res.rate_per_s > 0


async def test_a_paired_trial_measures_both_sides_in_alternating_slices() -> None:
    with FloorServer("aiohttp") as floor:
        a, b = await paired_closed_loop(
            ("a", clients.gateway(floor.url)), ("b", clients.gateway(floor.url, stamps=False)),
            clients=1, round_no=0, duration_s=0.2, slices=4, warmup=1,
        )  # fmt: skip
    assert (a.case, b.case) == ("a", "b")
    assert a.ok > 5 and b.ok > 5 and a.failed == b.failed == 0
    assert 0.15 < a.seconds < 0.5 and 0.15 < b.seconds < 0.5


def test_rss_is_read_from_proc() -> None:
    import os

    from travelagent.bench.memory import rss_kib

    assert 1_000 < rss_kib(os.getpid()) < 10_000_000


def test_the_wrangler_peer_is_skipped_with_a_reason_without_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    from travelagent.bench import peer

    monkeypatch.setattr(peer.shutil, "which", lambda name: None)
    with pytest.raises(peer.PeerUnavailable, match=r"Node\.js or npm not found"):
        peer.ensure_wrangler()
