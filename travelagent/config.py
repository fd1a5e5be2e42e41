"""Secrets and shared settings, read from the environment (design section 7)."""

from __future__ import annotations

import base64
import ipaddress
import os
import sys

JWT_SECRET_ENV = "TRAVELAGENT_JWT_SECRET"
API_KEY_ENV = "TRAVELAGENT_API_KEY"
WEBHOOK_SECRET_ENV = "TRAVELAGENT_WEBHOOK_SECRET"
# Bearer tokens of the agent host's RPC and the link control API (one per topology).
AGENT_HOST_TOKEN_ENV = "TRAVELAGENT_AGENT_HOST_TOKEN"
LINK_CONTROL_TOKEN_ENV = "TRAVELAGENT_LINK_CONTROL_TOKEN"

# Development defaults, so a laptop run works with no set-up. They are public: a server uses
# them only on a loopback address or with ``--dev``, and says so when it starts
# (``check_server_secrets``), never on another address.
_DEV_DEFAULTS = {
    JWT_SECRET_ENV: "travelagent-development-jwt-secret-not-for-production",
    API_KEY_ENV: "travelagent-dev-api-key",
    WEBHOOK_SECRET_ENV: "whsec_" + base64.b64encode(b"travelagent-dev-webhook-secret").decode(),
    AGENT_HOST_TOKEN_ENV: "travelagent-dev-agent-host-token",
    LINK_CONTROL_TOKEN_ENV: "travelagent-dev-link-control-token",
}
SERVER_SECRETS: dict[str, tuple[str, ...]] = {
    "realtime": (JWT_SECRET_ENV, API_KEY_ENV, WEBHOOK_SECRET_ENV),
    "worker": (JWT_SECRET_ENV, API_KEY_ENV, WEBHOOK_SECRET_ENV, AGENT_HOST_TOKEN_ENV),
    "agents": (AGENT_HOST_TOKEN_ENV,),
    "link": (LINK_CONTROL_TOKEN_ENV,),
}


class SecretError(RuntimeError):
    """A server would run on public development secrets on a non-loopback address."""


def secret(name: str) -> str:
    """The secret ``name`` from the environment, or its development default. Servers call
    ``check_server_secrets`` at start, which refuses or announces the defaults."""
    return os.environ.get(name) or _DEV_DEFAULTS[name]


def check_server_secrets(component: str, *, host: str, dev: bool) -> list[str]:
    """Before a server binds ``host``: the names among its secrets that would fall back to (or
    are set to) a development default. Allowed with ``dev`` or on loopback, with one warning
    line now; otherwise raise SecretError."""
    names = SERVER_SECRETS[component]
    public = [n for n in names if os.environ.get(n, "") in ("", _DEV_DEFAULTS[n])]
    if not public:
        return []
    if not dev and not is_loopback(host):
        raise SecretError(
            f"{', '.join(public)} not set (or set to the public development value); refused on"
            f" {host!r}: set them, or pass --dev to run with development secrets anyway"
        )
    why = "--dev" if dev else "loopback"
    print(
        f"travelagent {component}: using development secrets ({why}): {', '.join(public)}",
        file=sys.stderr,
        flush=True,
    )
    return public


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a server on this machine (127.0.0.0/8, ::1, localhost).
    An empty host or 0.0.0.0 binds every interface: not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def timeout_factor() -> float:
    """Scale for timing-sensitive waits in tests (TRAVELAGENT_TIMEOUT_FACTOR, default 1)."""
    try:
        return max(1.0, float(os.environ.get("TRAVELAGENT_TIMEOUT_FACTOR", "1")))
    except ValueError:
        return 1.0
