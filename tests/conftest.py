from __future__ import annotations

import socket

import pytest

from travelagent.config import timeout_factor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def tf() -> float:
    """Timeout factor: multiply timing-sensitive waits by it (TRAVELAGENT_TIMEOUT_FACTOR)."""
    return timeout_factor()
