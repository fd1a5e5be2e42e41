"""The recorder writes every record's columns and every stamp, exactly, whatever its buffering."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from travelagent.client import records
from travelagent.client.records import (
    MESSAGES_SCHEMA,
    MessageRecord,
    Recorder,
    finalize_run,
    source_tag,
)
from travelagent.wire.trace import Trace


def make(i: int, n_stamps: int) -> MessageRecord:
    trace = None
    if n_stamps >= 0:
        trace = Trace(
            id=f"m{i}", stamps=[("client.send", 1000 * i + k, "client") for k in range(n_stamps)]
        )
    return MessageRecord(
        run="r", cell=f"c{i % 2}", arch="gateway", publish="", streaming=bool(i % 3),
        user=f"u{i}", agent=f"u{i}", msg_id=f"m{i}", intended_ns=10 * i, send_ns=10 * i + 1,
        first_ns=None if i % 4 == 0 else 10 * i + 2, recv_ns=None if i % 5 == 0 else 10 * i + 3,
        status=records.STATUSES[i % len(records.STATUSES)], error=f"e{i}" if i % 2 else "",
        bytes=i, chunks=i % 3, trace=trace,
    )  # fmt: skip


def test_every_column_and_stamp_is_written_as_recorded_across_flushes(tmp_path: Path) -> None:
    recs = [make(i, i % 4 - 1) for i in range(23)]  # some with no trace, some with empty ones
    rec = Recorder(tmp_path, tag="t", flush_every=7)
    for r in recs:
        rec.add(r)
    rec.flush()
    rec.flush()  # nothing left: no empty part
    assert len(list((tmp_path / "parts").glob("messages-*.parquet"))) == 4
    assert finalize_run(tmp_path) == (23, sum(max(i % 4 - 1, 0) for i in range(23)))
    messages = pq.read_table(tmp_path / "messages.parquet").to_pylist()
    assert messages == [{name: getattr(r, name) for name in MESSAGES_SCHEMA.names} for r in recs]
    stamps = pq.read_table(tmp_path / "stamps.parquet").to_pylist()
    expected = [
        {"msg_id": r.msg_id, "seq": k, "name": n, "t_ns": t, "process": p}
        for r in recs
        if r.trace is not None
        for k, (n, t, p) in enumerate(r.trace.stamps)
    ]
    assert stamps == expected


def test_a_record_changed_after_it_was_added_is_written_as_it_was(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, tag="t")
    r = make(1, 2)
    rec.add(r)
    assert r.status == "error"
    r.status, r.bytes = "ok", 99
    assert r.trace is not None
    r.trace.stamps.append(("client.recv", 5, "client"))
    rec.flush()
    finalize_run(tmp_path)
    row = pq.read_table(tmp_path / "messages.parquet").to_pylist()[0]
    assert (row["status"], row["bytes"]) == ("error", 1)
    assert pq.read_table(tmp_path / "stamps.parquet").num_rows == 2


def test_an_unknown_status_is_refused_with_its_name(tmp_path: Path) -> None:
    r = make(1, 0)
    r.status = "weird"
    with pytest.raises(ValueError, match="'weird'"):
        Recorder(tmp_path).add(r)


def test_source_tag_is_the_process_and_is_made_again_after_a_fork() -> None:
    assert source_tag().endswith(f":{os.getpid()}")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its own tag
        os.write(write, source_tag().encode())
        os._exit(0)
    os.close(write)
    child_tag = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_tag.endswith(f":{pid}")
