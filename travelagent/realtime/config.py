"""Settings of the realtime service (keyword defaults; units in names)."""

from __future__ import annotations

from dataclasses import dataclass, field

from travelagent.realtime.history import DEFAULT_POLICIES, HistoryPolicy
from travelagent.realtime.idempotency import IDEMPOTENCY_MAX_KEYS
from travelagent.wire.tokens import DEFAULT_MAX_LIFETIME_S, TokenPolicy
from travelagent.wire.webhooks import STANDARD_RETRY_SCHEDULE_S

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8787/api/realtime/webhook"


@dataclass
class RealtimeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str = ""
    # Connection tokens: exp is required and at most this far ahead; aud/iss checked if set.
    jwt_max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_key: str = ""
    webhook_secret: str = ""
    # Empty string: no outbound webhooks at all.
    webhook_url: str = DEFAULT_WEBHOOK_URL
    webhook_presence: bool = True  # join/leave in room: channels
    webhook_connection: bool = False  # connect/disconnect
    webhook_queue_size: int = 1000
    # Webhooks in flight at once. In after-publish mode each one lasts a whole agent turn, so
    # a small pool queues messages at the realtime service; managed services fan out widely.
    webhook_workers: int = 64
    webhook_timeout_s: float = 5.0
    # Delays before the 2nd, 3rd, ... attempt: Standard Webhooks' schedule unless shortened.
    webhook_retry_schedule_s: tuple[float, ...] = STANDARD_RETRY_SCHEDULE_S
    # A SQLite file for the durable outbox ("": webhooks owed are kept in memory only).
    webhook_outbox_path: str = ""
    history: str = "memory"  # or "sqlite"
    # Publish idempotency keys are kept this long; with history = "sqlite" they are written to
    # db_path too and survive a restart. At least the webhook timestamp tolerance (300 s).
    idempotency_ttl_s: float = 900.0
    # ... and at most this many (the oldest dropped first): the cache's memory bound, about
    # 250 B of Python objects a key. Under load the count, not the ttl, may decide how long a
    # key lasts: 100,000 keys at 300 publications/s are 5.5 minutes.
    idempotency_max_keys: int = IDEMPOTENCY_MAX_KEYS
    db_path: str = "realtime.sqlite"
    history_policies: dict[str, HistoryPolicy] = field(
        default_factory=lambda: dict(DEFAULT_POLICIES)
    )
    # Streams: one unused this long is evicted, and past the cap the least recently used.
    history_stream_ttl_s: float = 3600.0
    history_max_streams: int = 100_000
    # None: every room may be entered; otherwise only these room names (room:<name>).
    allowed_rooms: frozenset[str] | None = None
    max_frame_bytes: int = 64 * 1024
    ping_interval_s: float = 25.0
    # A session whose unsent queue grows past this is too slow and is disconnected.
    max_queued_messages: int = 10_000
    max_queued_bytes: int = 16 * 1024 * 1024
    # A socket that sends no connect command within this is closed (0: never).
    connect_timeout_s: float = 10.0
    # aiohttp closes a connection idle this long, and (since 3.10) one that has not finished
    # its first request's headers by then: this is the header-read timeout aiohttp allows.
    # aiohttp's default; 15 s made Locust's hybrid presence lose its join pushes through the
    # shaped links (not yet understood), so shorten it only where that was checked.
    keepalive_timeout_s: float = 75.0
    # WebSocket connections one remote address may hold at once (0: no limit).
    max_connections_per_address: int = 1000
    # Connected sessions one user (the token's sub) may hold at once (0: no limit).
    max_connections_per_user: int = 100

    def token_policy(self) -> TokenPolicy:
        return TokenPolicy(
            secret=self.jwt_secret,
            max_lifetime_s=self.jwt_max_lifetime_s,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
        )

    @classmethod
    def from_env(cls, **overrides: object) -> RealtimeConfig:
        """Secrets from TRAVELAGENT_* (development defaults with a warning), then overrides."""
        from travelagent.config import API_KEY_ENV, JWT_SECRET_ENV, WEBHOOK_SECRET_ENV, secret

        cfg = cls(
            jwt_secret=secret(JWT_SECRET_ENV),
            api_key=secret(API_KEY_ENV),
            webhook_secret=secret(WEBHOOK_SECRET_ENV),
        )
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown RealtimeConfig field {k!r}")
            setattr(cfg, k, v)
        return cfg
