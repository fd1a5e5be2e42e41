"""Link faults and the run-time schedule of faults: pure data, no I/O.

Faults (each on or off at run time):
- ``refuse``: the link stops listening, so new connections get "connection refused"; open
  connections carry on.
- ``reset``: every open connection is reset (RST to both peers) and, while on, every new one
  is reset as soon as it is accepted.
- ``blackhole``: a network partition as TCP lives through it. Connections are accepted and
  bytes are read but *held*, nothing delivered either way, while the hole lasts; when it lifts,
  the held bytes (and closes) are delivered in order at the sender's next retransmission (TCP's
  exponential backoff from ``blackhole_rto_ms``, so a little after the lift; 0 = at the lift).
  A connection is reset instead, its held bytes discarded, when they exceed
  ``BLACKHOLE_MAX_HELD_BYTES`` or the hole outlasts ``blackhole_giveup_ms`` with bytes held
  (TCP's retransmission give-up). A connection with nothing to send lives through any hole,
  as an idle TCP connection does. Bytes are never silently discarded from a live connection.
- ``slow_close``: a close (FIN) is passed on only ``slow_close_ms`` after it arrived.
- ``clear``: all of the above off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

FAULT_NAMES: tuple[str, ...] = ("refuse", "reset", "blackhole", "slow_close", "clear")
DEFAULT_SLOW_CLOSE_MS = 2000.0
# TCP's minimum retransmission timeout on Linux (TCP_RTO_MIN); the backoff doubles up to
# BLACKHOLE_RTO_MAX_MS (TCP_RTO_MAX).
DEFAULT_BLACKHOLE_RTO_MS = 200.0
BLACKHOLE_RTO_MAX_MS = 120_000.0
# Linux gives up after tcp_retries2 = 15 retransmissions: about 924.6 s from RTO 200 ms.
DEFAULT_BLACKHOLE_GIVEUP_MS = 924_600.0
BLACKHOLE_MAX_HELD_BYTES = 4 * 1024 * 1024


class FaultError(ValueError):
    """A fault request is malformed."""


@dataclass(frozen=True)
class Faults:
    refuse: bool = False
    reset: bool = False
    blackhole: bool = False
    slow_close_ms: float = 0.0  # 0 = off
    blackhole_rto_ms: float = DEFAULT_BLACKHOLE_RTO_MS  # 0 = held bytes go at the lift
    blackhole_giveup_ms: float = DEFAULT_BLACKHOLE_GIVEUP_MS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_fault(self, fault: str, on: bool, *, slow_close_ms: float | None = None) -> Faults:
        """A copy with one named fault turned on or off."""
        if fault == "clear":
            return Faults()
        if fault == "slow_close":
            ms = DEFAULT_SLOW_CLOSE_MS if slow_close_ms is None else slow_close_ms
            return replace(self, slow_close_ms=ms if on else 0.0)
        if fault in ("refuse", "reset", "blackhole"):
            return replace(self, **{fault: on})
        raise FaultError(f"unknown fault {fault!r}; valid faults: {', '.join(FAULT_NAMES)}")

    def updated(self, body: Any) -> Faults:
        """Apply a control-API body such as ``{"reset": true}`` or ``{"fault": "refuse"}``.

        Accepted keys: refuse, reset, blackhole (booleans), slow_close (boolean),
        slow_close_ms, blackhole_rto_ms, blackhole_giveup_ms (numbers >= 0; the give-up > 0),
        clear (true), or ``fault`` + optional ``on`` (default true).
        """
        if not isinstance(body, dict):
            raise FaultError("fault request must be a JSON object")
        faults = self
        if "fault" in body:
            on = body.get("on", True)
            if not isinstance(on, bool):
                raise FaultError("'on' must be true or false")
            ms = body.get("slow_close_ms")
            if ms is not None:
                ms = _non_negative("slow_close_ms", ms)
            return faults.with_fault(str(body["fault"]), on, slow_close_ms=ms)._tuned(body)
        valid = {"refuse", "reset", "blackhole", "slow_close", "slow_close_ms", "clear", *_TUNING}
        unknown = set(body) - valid
        if unknown:
            raise FaultError(f"unknown fault key(s) {sorted(unknown)}; valid: {sorted(valid)}")
        if body.get("clear") is True:
            faults = Faults()
        for name in ("refuse", "reset", "blackhole", "slow_close"):
            if name in body:
                if not isinstance(body[name], bool):
                    raise FaultError(f"{name!r} must be true or false")
                faults = faults.with_fault(name, body[name], slow_close_ms=None)
        if "slow_close_ms" in body:
            faults = replace(
                faults, slow_close_ms=_non_negative("slow_close_ms", body["slow_close_ms"])
            )
        return faults._tuned(body)

    def _tuned(self, body: dict[str, Any]) -> Faults:
        faults = self
        for key in _TUNING:
            if key in body:
                value = _non_negative(key, body[key])
                if key == "blackhole_giveup_ms" and value == 0:
                    raise FaultError("blackhole_giveup_ms must be > 0")
                if key == "blackhole_rto_ms":
                    faults = replace(faults, blackhole_rto_ms=value)
                else:
                    faults = replace(faults, blackhole_giveup_ms=value)
        return faults


_TUNING = ("blackhole_rto_ms", "blackhole_giveup_ms")


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{key} must be a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FaultEvent:
    """At ``at_s`` after the schedule starts, turn ``fault`` on (or off) on link ``link``."""

    at_s: float
    link: str
    fault: str
    on: bool = True
    slow_close_ms: float | None = None


def expand_schedule(entries: list[dict[str, Any]]) -> list[FaultEvent]:
    """Scenario ``[[faults]]`` entries to on/off events in time order.

    An entry with ``duration_s`` becomes two events: on at ``at_s``, off at ``at_s + duration_s``.
    """
    events: list[FaultEvent] = []
    for entry in entries:
        at_s = float(entry["at_s"])
        fault = str(entry["fault"])
        if fault not in FAULT_NAMES:
            raise FaultError(f"unknown fault {fault!r}; valid faults: {', '.join(FAULT_NAMES)}")
        ms = entry.get("slow_close_ms")
        events.append(FaultEvent(at_s, str(entry["link"]), fault, True, ms))
        duration_s = entry.get("duration_s")
        if duration_s is not None and fault != "clear":
            events.append(
                FaultEvent(at_s + float(duration_s), str(entry["link"]), fault, False, ms)
            )
    events.sort(key=lambda e: e.at_s)
    return events
