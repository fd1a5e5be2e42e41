"""Connections per remote address, shared by the gateway and the realtime service. Pure code.

A bound refuses rather than grows without end; the caller counts each refusal in ``/healthz``.
"""

from __future__ import annotations

from collections import Counter


class ConnectionLimiter:
    """At most ``max_per_address`` open connections per remote address (0: no limit)."""

    def __init__(self, max_per_address: int) -> None:
        self.max_per_address = max_per_address
        self.open: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False (nothing counted) if at the cap."""
        if self.max_per_address > 0 and self.open[address] >= self.max_per_address:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
