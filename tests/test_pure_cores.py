"""The pure cores import with no network library at all: they hold rules, not sockets."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE_MODULES = (
    "travelagent.vocab",
    "travelagent.wire.agent_rpc",
    "travelagent.wire.centrifugo",
    "travelagent.wire.gateway",
    "travelagent.wire.ndjson",
    "travelagent.wire.proxy",
    "travelagent.wire.server_api",
    "travelagent.wire.trace",
    "travelagent.wire.webhooks",
    "travelagent.realtime.session",
    "travelagent.realtime.hub",
    "travelagent.realtime.idempotency",
    "travelagent.agent.turns",
    "travelagent.worker.gateway_session",
    "travelagent.worker.intake",
    "travelagent.link.schedule",
)
NETWORK_LIBRARIES = ("aiohttp", "websockets", "httpx")


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_pure_core_imports_with_aiohttp_websockets_and_httpx_blocked(module: str) -> None:
    # A None entry in sys.modules makes any import of that name raise ImportError.
    code = "\n".join(
        [
            "import sys",
            *(f"sys.modules[{name!r}] = None" for name in NETWORK_LIBRARIES),
            f"import {module}",
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{NETWORK_LIBRARIES!r} and sys.modules[m] is not None)",
            "assert not loaded, loaded",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
