"""Per-message records and the run recorder.

One ``MessageRecord`` per request, its stamps alongside. A ``Recorder`` buffers records and
writes them as Parquet *part files* (``parts/messages-<tag>-<n>.parquet`` and the matching
``stamps-...``) so that a crash loses at most one buffer and many processes (Locust workers)
can write into one run without coordination. ``finalize_run`` merges the parts into the run's
``messages.parquet`` and ``stamps.parquet``, de-duplicating by ``msg_id``.
"""

from __future__ import annotations

import operator
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from travelagent.wire.trace import Trace

# stopped: in flight when the load generator was stopped (cut short, not a failure)
STATUSES = ("ok", "error", "timeout", "lost", "stopped")

MESSAGES_SCHEMA = pa.schema(
    [
        ("run", pa.string()),
        ("cell", pa.string()),
        ("arch", pa.string()),  # gateway | realtime | hybrid
        ("publish", pa.string()),  # http-new | http-pooled | ws-persistent | "" for gateway
        ("streaming", pa.bool_()),
        ("user", pa.string()),
        ("agent", pa.string()),
        ("msg_id", pa.string()),
        ("intended_ns", pa.int64()),  # open-loop schedule; equals send_ns in closed loop
        ("send_ns", pa.int64()),
        ("first_ns", pa.int64()),  # first reply frame (chunk or whole); null if none
        ("recv_ns", pa.int64()),  # complete reply; null unless status is ok
        ("status", pa.string()),
        ("error", pa.string()),
        ("bytes", pa.int64()),  # reply bytes received for this message
        ("chunks", pa.int64()),  # chunk frames received (0 when not streamed)
        ("source", pa.string()),  # which load process recorded it (host:pid)
    ]
)

STAMPS_SCHEMA = pa.schema(
    [
        ("msg_id", pa.string()),
        ("seq", pa.int32()),
        ("name", pa.string()),
        ("t_ns", pa.int64()),
        ("process", pa.string()),
    ]
)


_source: list[str] = []  # this process's tag, made once (and again in a forked child)


def source_tag() -> str:
    if not _source:
        _source.append(f"{socket.gethostname()}:{os.getpid()}")
    return _source[0]


os.register_at_fork(after_in_child=_source.clear)


@dataclass
class MessageRecord:
    run: str
    cell: str
    arch: str
    publish: str
    streaming: bool
    user: str
    agent: str
    msg_id: str
    intended_ns: int
    send_ns: int
    first_ns: int | None = None
    recv_ns: int | None = None
    status: str = "ok"
    error: str = ""
    bytes: int = 0
    chunks: int = 0
    source: str = field(default_factory=source_tag)
    trace: Trace | None = None  # not a column; becomes stamps rows
    reply: str = ""  # not a column: the reply's whole text, for whoever sent the message

    def row(self) -> dict[str, Any]:
        # explicit, not dataclasses.asdict: this runs once per message in the load generator
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = tuple(MESSAGES_SCHEMA.names)
_STAMP_COLUMNS = tuple(STAMPS_SCHEMA.names)
_ROW = operator.attrgetter(*_COLUMNS)


def warm_up() -> None:
    """Build (and drop) an empty part: the first table pyarrow builds imports pandas, about half
    a second, which a load generator should spend before its users start, not at its first
    flush with every user stalled."""
    pa.Table.from_pydict({name: [] for name in _COLUMNS}, schema=MESSAGES_SCHEMA)


class Recorder:
    """Collects records; thread- and greenlet-safe; flushes part files every ``flush_every``."""

    def __init__(self, run_dir: str | Path, *, tag: str | None = None, flush_every: int = 5000):
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / "parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.tag = tag or f"{socket.gethostname()}-{os.getpid()}"
        self.flush_every = flush_every
        # Per message one tuple of column values and the trace's stamps, appended as they are;
        # a flush turns them into columns (C-speed transposes) and builds each table from
        # columns (``from_pydict``), several times faster than from rows, so the load generator
        # spends little per message and stalls little at a flush.
        self._rows: list[tuple[Any, ...]] = []
        self._stamps: list[tuple[str, tuple[tuple[str, int, str], ...]]] = []
        self._part = 0
        self._lock = threading.Lock()
        self.count = 0

    def add(self, rec: MessageRecord) -> None:
        if rec.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {rec.status!r}")
        row = _ROW(rec)
        stamps = tuple(rec.trace.stamps) if rec.trace is not None else ()
        with self._lock:
            self._rows.append(row)
            if stamps:
                self._stamps.append((rec.msg_id, stamps))
            self.count += 1
            full = len(self._rows) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, stamp_rows = self._rows, self._stamps
            self._rows, self._stamps = [], []
            part = self._part
            self._part += 1
        if not rows:
            return
        cols = dict(zip(_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
        flat = [stamp for _, stamps in stamp_rows for stamp in stamps]
        names, times, procs = (list(c) for c in zip(*flat, strict=True)) if flat else ([], [], [])
        stamp_cols = {
            "msg_id": [mid for mid, stamps in stamp_rows for _ in stamps],
            "seq": [seq for _, stamps in stamp_rows for seq in range(len(stamps))],
            "name": names,
            "t_ns": times,
            "process": procs,
        }
        name = f"{self.tag}-{part:05d}.parquet"
        write_atomic(
            pa.Table.from_pydict(cols, schema=MESSAGES_SCHEMA), self.parts_dir / f"messages-{name}"
        )
        write_atomic(
            pa.Table.from_pydict(stamp_cols, schema=STAMPS_SCHEMA),
            self.parts_dir / f"stamps-{name}",
        )

    close = flush


def write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def finalize_run(run_dir: str | Path, *, keep_parts: bool = False) -> tuple[int, int]:
    """Merge part files (and any existing merged files) into messages/stamps.parquet.

    Returns (messages, stamps) counts. Rows are de-duplicated by msg_id (first seen wins), so
    finalizing twice, or a record shipped twice, never doubles a message.
    """
    run_dir = Path(run_dir)
    parts = run_dir / "parts"
    msg_tables: list[pa.Table] = []
    stamp_tables: list[pa.Table] = []
    for name, schema, out in (
        ("messages", MESSAGES_SCHEMA, msg_tables),
        ("stamps", STAMPS_SCHEMA, stamp_tables),
    ):
        merged = run_dir / f"{name}.parquet"
        if merged.exists():
            out.append(pq.read_table(merged, schema=schema))
        for p in sorted(parts.glob(f"{name}-*.parquet")) if parts.exists() else []:
            out.append(pq.read_table(p, schema=schema))
    messages = pa.concat_tables(msg_tables) if msg_tables else MESSAGES_SCHEMA.empty_table()
    stamps = pa.concat_tables(stamp_tables) if stamp_tables else STAMPS_SCHEMA.empty_table()
    # De-duplicate by msg_id, keeping the first occurrence of each message and its stamps.
    seen: set[str] = set()
    keep = []
    for i, mid in enumerate(messages.column("msg_id").to_pylist()):
        if mid not in seen:
            seen.add(mid)
            keep.append(i)
    if len(keep) != messages.num_rows:
        messages = messages.take(pa.array(keep, type=pa.int64()))
    skeys = list(
        zip(stamps.column("msg_id").to_pylist(), stamps.column("seq").to_pylist(), strict=True)
    )
    seen_s: set[tuple[str, int]] = set()
    keep_s = []
    for i, k in enumerate(skeys):
        if k not in seen_s:
            seen_s.add(k)
            keep_s.append(i)
    if len(keep_s) != stamps.num_rows:
        stamps = stamps.take(pa.array(keep_s, type=pa.int64()))
    write_atomic(messages, run_dir / "messages.parquet")
    write_atomic(stamps, run_dir / "stamps.parquet")
    if not keep_parts and parts.exists():
        for p in parts.glob("*.parquet"):
            p.unlink()
        try:
            parts.rmdir()
        except OSError:
            pass
    return messages.num_rows, stamps.num_rows
