"""Counting a chaos phase: what the client was told, what ran twice, how long until it recovered.

Pure functions over plain rows (no I/O but reading an agent store), so the counting is tested
on synthetic records and used as is on a run's ``messages.parquet``.

The rules (docs/chaos.md):

- ``sent``: messages the client started (its ``client.send`` stamp), whatever became of them.
- ``replied``: ended ``ok``.
- ``errored``: ended ``error``: the client was told, explicitly, that this message failed (an
  error frame, an ``isError`` reply, a refused publish, a send on a closed socket). The reasons
  are kept, counted by text.
- ``lost``: sent, no reply and no explicit error: ``lost`` (the connection went with the reply
  owed) or ``timeout`` (nothing came). ``stopped`` never occurs here: a phase waits for every
  message it sent.
- ``duplicated``: ``duplicated_turns`` (an agent turn that ran twice: in the agent store, a
  user message no turn key points at, or more committed replies than finished turns) plus
  ``duplicated_finals`` (a message whose final reply reached the client more than once).
- ``recovery_s``: from the fault's injection to the first ``ok`` reply of a message sent after
  it; empty when none came.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOST_STATUSES = ("lost", "timeout")
COLUMNS = (
    "fault",
    "path",
    "sent",
    "replied",
    "errored",
    "lost",
    "duplicated",
    "recovery_s",
    "duplicated_turns",
    "duplicated_finals",
    "other",
    "error_reasons",
    "lost_reasons",
    "target",
    "injected_at_s",
)


@dataclass
class FaultCount:
    fault: str
    path: str
    sent: int = 0
    replied: int = 0
    errored: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_s: float = math.nan
    duplicated_turns: int = 0
    duplicated_finals: int = 0
    other: int = 0  # a status none of the above (``stopped``): should stay 0
    error_reasons: dict[str, int] = field(default_factory=dict)
    lost_reasons: dict[str, int] = field(default_factory=dict)
    target: str = ""
    injected_at_s: float = math.nan  # after the phase started

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_reasons"] = format_reasons(self.error_reasons)
        out["lost_reasons"] = format_reasons(self.lost_reasons)
        out["recovery_s"] = "" if math.isnan(self.recovery_s) else round(self.recovery_s, 3)
        out["injected_at_s"] = (
            "" if math.isnan(self.injected_at_s) else round(self.injected_at_s, 3)
        )
        return {k: out[k] for k in COLUMNS}


def format_reasons(reasons: Mapping[str, int]) -> str:
    """``reason ×n; other ×m``, commonest first."""
    return "; ".join(
        f"{r} ×{n}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _reason(text: Any) -> str:
    s = str(text or "").strip().replace("\n", " ")
    return (s[:117] + "...") if len(s) > 120 else (s or "(no reason given)")


def count_fault(
    fault: str,
    path: str,
    messages: Iterable[Mapping[str, Any]],
    *,
    injected_ns: int,
    finals: Mapping[str, int] | None = None,
    duplicated_turns: int = 0,
    started_ns: int | None = None,
    target: str = "",
) -> FaultCount:
    """Count one phase. ``messages`` are rows with ``msg_id``, ``status``, ``error``,
    ``send_ns`` and ``recv_ns``; ``finals`` maps a message id to how many final replies the
    client received for it (1 is right; absent means 0 or 1, not counted)."""
    out = FaultCount(fault, path, target=target)
    if started_ns is not None:
        out.injected_at_s = (injected_ns - started_ns) / 1e9
    errors: Counter[str] = Counter()
    losses: Counter[str] = Counter()
    first_ok: int | None = None
    for m in messages:
        out.sent += 1
        status = m["status"]
        if status == "ok":
            out.replied += 1
            recv = m.get("recv_ns")
            if recv is not None and m["send_ns"] >= injected_ns:
                first_ok = int(recv) if first_ok is None else min(first_ok, int(recv))
        elif status == "error":
            out.errored += 1
            errors[_reason(m.get("error"))] += 1
        elif status in LOST_STATUSES:
            out.lost += 1
            losses[f"{status}: {_reason(m.get('error'))}"] += 1
        else:
            out.other += 1
    out.error_reasons = dict(errors)
    out.lost_reasons = dict(losses)
    out.duplicated_finals = sum(n - 1 for n in (finals or {}).values() if n > 1)
    out.duplicated_turns = duplicated_turns
    out.duplicated = out.duplicated_turns + out.duplicated_finals
    if first_ok is not None:
        out.recovery_s = max(0.0, (first_ok - injected_ns) / 1e9)
    return out


def store_duplicates(db_paths: Iterable[Path], agents: Iterable[str]) -> dict[str, int]:
    """Agent turns that ran more than once, per agent, from the agent stores.

    Every run of a turn commits the user's message with its turn key, and the reply with the
    key's ``done``. A run that did not find its key (the turn ran again) replaces the key, so
    the first run's user message is left with no key pointing at it; two runs that both
    resumed one key commit two replies for one finished turn. So, per agent: the larger of the
    user messages no key points at, and the replies beyond the finished turns."""
    wanted = set(agents)
    out: dict[str, int] = {}
    for path in db_paths:
        if not Path(path).exists():
            continue
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if not {"messages", "turns"} <= tables:
                continue
            for agent in sorted(wanted):
                users = {
                    int(r[0])
                    for r in conn.execute(
                        "SELECT seq FROM messages WHERE agent = ? AND role = 'user'", (agent,)
                    )
                }
                replies = conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE agent = ? AND role = 'assistant'",
                    (agent,),
                ).fetchone()[0]
                keyed = {
                    int(r[0])
                    for r in conn.execute("SELECT user_seq FROM turns WHERE agent = ?", (agent,))
                }
                done = conn.execute(
                    "SELECT COUNT(*) FROM turns WHERE agent = ? AND state = 'done'", (agent,)
                ).fetchone()[0]
                dup = max(len(users - keyed), int(replies) - int(done), 0)
                if dup:
                    out[agent] = out.get(agent, 0) + dup
        finally:
            conn.close()
    return out
