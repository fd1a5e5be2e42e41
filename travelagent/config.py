"""Secrets and shared settings, read from the environment (design section 7)."""

from __future__ import annotations

import base64
import ipaddress
import os
import sys

JWT_SECRET_ENV = "TRAVELAGENT_JWT_SECRET"
API_KEY_ENV = "TRAVELAGENT_API_KEY"
WEBHOOK_SECRET_ENV = "TRAVELAGENT_WEBHOOK_SECRET"

# Development defaults, so a laptop run works with no set-up; a warning says they are in use.
_DEV_DEFAULTS = {
    JWT_SECRET_ENV: "travelagent-development-jwt-secret-not-for-production",
    API_KEY_ENV: "travelagent-dev-api-key",
    WEBHOOK_SECRET_ENV: "whsec_" + base64.b64encode(b"travelagent-dev-webhook-secret").decode(),
}
_warned: set[str] = set()


def secret(name: str, *, warn: bool = True) -> str:
    """The secret ``name`` from the environment, or the development default with a warning."""
    value = os.environ.get(name)
    if value:
        return value
    if warn and name not in _warned:
        _warned.add(name)
        print(f"travelagent: {name} not set; using the development default", file=sys.stderr)
    return _DEV_DEFAULTS[name]


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
