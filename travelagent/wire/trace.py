"""Trace stamps and the one clock every component uses.

Design rules:
- ``now_ns()`` is the only clock. It is ``time.time_ns()`` so stamps from different processes
  on one host are comparable; a run records clock offsets when hosts differ.
- A trace travels inside every frame as ``{"id": msg_id, "stamps": [[name, t_ns, process], ...]}``.
  The third element (the stamping process's label) is an extension of the ``[name, t_ns]`` pair:
  readers that take the first two elements keep working. It is what lets the analysis tell a
  network hop (two processes) from an in-process one.
- Components append through ``Trace.stamp``; the names are fixed below, in path order, and an
  unknown name is a programming error caught at the call site, not in the analysis.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from travelagent.vocab import PROCESSES as PROCESS_LABELS
from travelagent.vocab import STAMP_NAMES as ALL_STAMP_NAMES
from travelagent.vocab import StampName

GATEWAY_PATH: tuple[StampName, ...] = (
    "client.send",
    "worker.recv",
    "agent.start",
    "llm.first",
    "llm.done",
    "agent.done",
    "worker.send",
    "client.first",
    "client.recv",
)

REALTIME_PATH: tuple[StampName, ...] = (
    "client.send",
    "realtime.recv",
    "realtime.webhook",
    "worker.recv",
    "agent.start",
    "llm.first",
    "llm.done",
    "agent.done",
    "worker.publish",
    "realtime.publish",
    "realtime.deliver",
    "client.first",
    "client.recv",
)

STAMP_NAMES: frozenset[str] = frozenset(ALL_STAMP_NAMES)
assert STAMP_NAMES == frozenset(GATEWAY_PATH + REALTIME_PATH)

# Process labels: who stamped. An agent hosted inside the worker stamps as "worker".
PROCESSES: frozenset[str] = frozenset(PROCESS_LABELS)

MAX_STAMPS = 256  # a trace is bounded: a peer cannot grow it without limit


class TraceError(ValueError):
    """A trace on the wire is malformed."""


def now_ns() -> int:
    """Wall-clock nanoseconds; the single clock of the toolkit."""
    return time.time_ns()


def new_msg_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Trace:
    id: str
    stamps: list[tuple[str, int, str]] = field(default_factory=list)

    @classmethod
    def start(cls, msg_id: str | None = None) -> Trace:
        return cls(id=msg_id or new_msg_id())

    def stamp(self, name: StampName, process: str, t_ns: int | None = None) -> int:
        """Append stamp ``name`` taken by ``process`` now (or at ``t_ns``); return its time."""
        if name not in STAMP_NAMES:
            raise KeyError(f"unknown stamp name {name!r}")
        if len(self.stamps) >= MAX_STAMPS:
            raise TraceError(f"trace {self.id} already holds {MAX_STAMPS} stamps")
        t = now_ns() if t_ns is None else t_ns
        self.stamps.append((name, t, process))
        return t

    @property
    def room(self) -> int:
        """How many more stamps this trace takes."""
        return MAX_STAMPS - len(self.stamps)

    def try_stamp(self, name: StampName, process: str, t_ns: int | None = None) -> bool:
        """Stamp like ``stamp`` unless the trace is full; return whether the stamp was taken.

        A peer may send a trace already at ``MAX_STAMPS``: the message matters more than the
        stamp, so every site that stamps a trace it received goes through here.
        """
        try:
            self.stamp(name, process, t_ns=t_ns)
        except TraceError:
            return False
        return True

    def get(self, name: str) -> int | None:
        """Time of the last stamp called ``name``, or None."""
        for n, t, _ in reversed(self.stamps):
            if n == name:
                return t
        return None

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "stamps": [[n, t, p] for n, t, p in self.stamps]}

    def copy(self) -> Trace:
        return Trace(id=self.id, stamps=list(self.stamps))

    @classmethod
    def from_wire(cls, obj: Any) -> Trace:
        """Parse a trace received from a peer; raise TraceError with a reason if malformed.

        Unknown stamp names from peers are kept (a newer peer may stamp more), but shapes and
        types are checked so nothing downstream trips over them.
        """
        if not isinstance(obj, dict):
            raise TraceError("trace must be an object")
        msg_id = obj.get("id")
        if not isinstance(msg_id, str) or not msg_id or len(msg_id) > 128:
            raise TraceError("trace.id must be a non-empty string of at most 128 characters")
        raw = obj.get("stamps", [])
        if not isinstance(raw, list):
            raise TraceError("trace.stamps must be a list")
        if len(raw) > MAX_STAMPS:
            raise TraceError(f"trace.stamps holds more than {MAX_STAMPS} stamps")
        stamps: list[tuple[str, int, str]] = []
        for item in raw:
            if not isinstance(item, list | tuple) or len(item) not in (2, 3):
                raise TraceError("each stamp must be [name, t_ns] or [name, t_ns, process]")
            name, t = item[0], item[1]
            proc = item[2] if len(item) == 3 else ""
            if not isinstance(name, str) or len(name) > 64:
                raise TraceError("stamp name must be a string")
            if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                raise TraceError("stamp t_ns must be a non-negative integer")
            if not isinstance(proc, str) or len(proc) > 64:
                raise TraceError("stamp process must be a string")
            stamps.append((name, t, proc))
        return cls(id=msg_id, stamps=stamps)

    @classmethod
    def from_wire_or_none(cls, obj: Any) -> Trace | None:
        if obj is None:
            return None
        return cls.from_wire(obj)
