"""Worker settings: one object, keyword arguments with units in their names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from travelagent.config import is_loopback
from travelagent.vocab import PUBLISH_MODES, WEBHOOK_MODES, PublishMode, WebhookMode
from travelagent.wire.gateway import DEFAULT_MAX_FRAME_BYTES
from travelagent.wire.tokens import DEFAULT_MAX_LIFETIME_S, TokenPolicy

__all__ = ["GATEWAY_ACCESS", "PUBLISH_MODES", "WEBHOOK_MODES", "WorkerConfig"]

# "auto": tokens optional on a loopback address (the original Worker's clients send none) and
# required on any other; "token": always required; "insecure-open": optional on any address.
GATEWAY_ACCESS = ("auto", "token", "insecure-open")


@dataclass
class WorkerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    db_path: Path = field(default_factory=lambda: Path("data/agents.sqlite3"))
    # Gateway
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_inflight_per_socket: int = 64
    # Idle HTTP connections, and ones still sending their first headers, are closed after this
    keepalive_timeout_s: float = 75.0
    # Gateway sockets one remote address may hold at once (0: no limit)
    max_connections_per_address: int = 1000
    # Gateway sockets one user (token sub, or userId on an open gateway) may hold (0: no limit)
    max_connections_per_user: int = 100
    # Room bindings (user, room) held at once; past it the least recently bound is released
    max_room_bindings: int = 100_000
    # Agents live in this process at once; past it idle ones are released (least recent first)
    max_live_agents: int = 10_000
    stream: bool = True  # default for messages that do not say
    gateway_access: str = "auto"
    # Connection tokens (the realtime service's HS256 JWT) and what they must satisfy
    jwt_secret: str = ""
    jwt_max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # Realtime path
    realtime_url: str = "http://127.0.0.1:8000"
    publish: PublishMode = "http-pooled"
    webhook_mode: WebhookMode = "after-publish"
    webhook_tolerance_s: int = 300
    webhook_dedup_size: int = 100_000  # turns held in memory until published, at most
    # Webhook ids are kept in the database this long; at least the timestamp tolerance, so no
    # redelivery the worker still accepts can outlive its id. Memory holds the newest
    # ``webhook_dedup_memory`` of them and asks the database for the rest.
    webhook_dedup_ttl_s: float = 900.0
    webhook_dedup_memory: int = 16_384
    publish_timeout_s: float = 10.0
    # Agents: None = in this process; a URL = a separate agent host
    agents_url: str | None = None
    process: str = "worker"

    def __post_init__(self) -> None:
        if self.publish not in PUBLISH_MODES:
            raise ValueError(f"publish must be one of {', '.join(PUBLISH_MODES)}")
        if self.webhook_mode not in WEBHOOK_MODES:
            raise ValueError(f"webhook_mode must be one of {', '.join(WEBHOOK_MODES)}")
        if self.gateway_access not in GATEWAY_ACCESS:
            raise ValueError(f"gateway_access must be one of {', '.join(GATEWAY_ACCESS)}")
        if not self.gateway_open and not self.jwt_secret:
            raise ValueError("the gateway requires tokens but no JWT secret is set")
        if self.max_frame_bytes <= 0:
            raise ValueError("max_frame_bytes must be positive")
        if self.webhook_dedup_size < 1 or self.webhook_dedup_memory < 1:
            raise ValueError("webhook_dedup_size and webhook_dedup_memory must be at least 1")
        if self.webhook_dedup_ttl_s < self.webhook_tolerance_s:
            raise ValueError("webhook_dedup_ttl_s must be at least webhook_tolerance_s")
        self.db_path = Path(self.db_path)

    @property
    def gateway_open(self) -> bool:
        """Whether a gateway socket without a token is admitted."""
        if self.gateway_access == "auto":
            return is_loopback(self.host)
        return self.gateway_access == "insecure-open"

    def token_policy(self) -> TokenPolicy:
        return TokenPolicy(
            secret=self.jwt_secret,
            max_lifetime_s=self.jwt_max_lifetime_s,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
        )
