"""Channel history: size, TTL, offsets, epochs and recovery; memory and SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from travelagent.realtime.history import History, HistoryPolicy
from travelagent.realtime.history_sqlite import SqliteHistory

POLICIES = {"room": HistoryPolicy(size=3, ttl_s=10.0)}


def test_offsets_grow_by_one_within_an_epoch() -> None:
    h = History(POLICIES)
    got = [h.add("room:a", i, None, now_s=100.0) for i in range(3)]
    assert [o for o, _ in got] == [1, 2, 3]
    assert len({e for _, e in got}) == 1


def test_channels_without_a_policy_keep_no_history() -> None:
    h = History(POLICIES)
    assert h.add("travel:u", 1, None, now_s=0) == (0, "")
    assert h.policy("travel:u") is None


def test_history_is_bounded_by_size() -> None:
    h = History(POLICIES)
    for i in range(5):
        h.add("room:a", i, None, now_s=100.0)
    pubs, offset, _ = h.read("room:a", now_s=100.0, limit=-1)
    assert [p.data for p in pubs] == [2, 3, 4] and offset == 5


def test_history_drops_publications_older_than_ttl() -> None:
    h = History(POLICIES)
    h.add("room:a", "old", None, now_s=100.0)
    h.add("room:a", "new", None, now_s=105.0)
    pubs, offset, _ = h.read("room:a", now_s=111.0, limit=-1)
    assert [p.data for p in pubs] == ["new"] and offset == 2


def test_read_limit_zero_returns_only_the_position() -> None:
    h = History(POLICIES)
    h.add("room:a", 1, None, now_s=0)
    pubs, offset, epoch = h.read("room:a", now_s=0)
    assert pubs == [] and offset == 1 and epoch


def test_recovery_returns_exactly_the_missed_publications() -> None:
    h = History(POLICIES)
    _, epoch = h.add("room:a", "a", None, now_s=0)
    h.add("room:a", "b", None, now_s=0)
    h.add("room:a", "c", None, now_s=0)
    rec = h.recover("room:a", 1, epoch, now_s=0)
    assert rec.recovered and [p.data for p in rec.publications] == ["b", "c"]
    assert h.recover("room:a", 3, epoch, now_s=0).recovered


def test_recovery_fails_when_the_epoch_changed_or_publications_were_pruned() -> None:
    h = History(POLICIES)
    _, epoch = h.add("room:a", 0, None, now_s=0)
    assert not h.recover("room:a", 1, "other-epoch", now_s=0).recovered
    for i in range(5):
        h.add("room:a", i, None, now_s=0)
    rec = h.recover("room:a", 1, epoch, now_s=0)
    assert not rec.recovered and rec.publications == [] and rec.offset == 6


def test_a_new_history_starts_a_new_epoch() -> None:
    _, e1 = History(POLICIES).add("room:a", 1, None, now_s=0)
    _, e2 = History(POLICIES).add("room:a", 1, None, now_s=0)
    assert e1 != e2


def test_sqlite_history_keeps_epoch_offsets_and_publications_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    h = SqliteHistory(db, POLICIES)
    for i in range(5):
        _, epoch = h.add("room:a", {"n": i}, {"user": "u"}, now_s=1e12)
    h.close()
    h2 = SqliteHistory(db, POLICIES)
    pubs, offset, epoch2 = h2.read("room:a", now_s=1e12, limit=-1)
    assert (offset, epoch2) == (5, epoch)
    assert [p.data for p in pubs] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert pubs[0].info == {"user": "u"}
    assert h2.add("room:a", "next", None, now_s=1e12) == (6, epoch)
    rec = h2.recover("room:a", 4, epoch, now_s=1e12)
    assert rec.recovered and [p.offset for p in rec.publications] == [5, 6]
    h2.close()


def test_a_publication_and_its_idempotency_key_are_committed_together_or_not_at_all(
    tmp_path: Path,
) -> None:
    db = tmp_path / "h.sqlite"
    h = SqliteHistory(db, POLICIES)
    offset, epoch = h.add("room:a", {"n": 1}, None, now_s=1e12, idempotency_key="k1")
    rows = h.db.execute("SELECT channel, key, offset, epoch FROM idempotency").fetchall()
    assert rows == [("room:a", "k1", offset, epoch)]
    # The key's write fails: the publication is not kept either, and the connection is usable.
    h.db.execute("DROP TABLE idempotency")
    with pytest.raises(sqlite3.OperationalError):
        h.add("room:a", {"n": 2}, None, now_s=1e12, idempotency_key="k2")
    assert h.db.execute("SELECT COUNT(*) FROM pubs").fetchone() == (1,)
    assert not h.db.in_transaction
    pubs, offset_now, _ = h.read("room:a", now_s=1e12, limit=-1)
    assert offset_now == offset and [p.data for p in pubs] == [{"n": 1}]  # memory as the file
    h.close()


@pytest.mark.parametrize("durable", [False, True])
def test_a_stream_nobody_published_on_holds_no_deque_and_one_that_was_trims_as_before(
    durable: bool, tmp_path: Path
) -> None:
    h = SqliteHistory(tmp_path / "h.db", POLICIES) if durable else History(POLICIES)
    s = h.stream("room:a", now_s=0.0)  # a subscriber's channel, never published on
    assert s.pubs == () and not hasattr(s, "__dict__")
    assert h.read("room:a", now_s=0.0, limit=10)[0] == []
    assert s.pubs == ()  # a read leaves it so
    for i in range(5):
        h.add("room:a", {"i": i}, None, now_s=float(i))
    pubs, top, _ = h.read("room:a", now_s=5.0, limit=-1)
    assert top == 5 and [p.data["i"] for p in pubs] == [2, 3, 4]  # size 3
