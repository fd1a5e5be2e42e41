"""travelagent: measure the WebSocket gateway and the managed realtime path hop by hop."""

from __future__ import annotations

__version__ = "0.1.0"
