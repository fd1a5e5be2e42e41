from __future__ import annotations

import os
import socket

import pytest
from hypothesis import HealthCheck, settings

from travelagent.config import timeout_factor

# Property tests: a modest, deadline-free budget on shared CI cores; HYPOTHESIS_PROFILE=thorough
# for a longer hunt. No example database: runs leave nothing behind in the work tree.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
