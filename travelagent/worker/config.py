"""Worker settings: one object, keyword arguments with units in their names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from travelagent.vocab import PUBLISH_MODES, WEBHOOK_MODES, PublishMode, WebhookMode
from travelagent.wire.gateway import DEFAULT_MAX_FRAME_BYTES

__all__ = ["PUBLISH_MODES", "WEBHOOK_MODES", "WorkerConfig"]


@dataclass
class WorkerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    db_path: Path = field(default_factory=lambda: Path("data/agents.sqlite3"))
    # Gateway
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_inflight_per_socket: int = 64
    stream: bool = True  # default for messages that do not say
    # Realtime path
    realtime_url: str = "http://127.0.0.1:8000"
    publish: PublishMode = "http-pooled"
    webhook_mode: WebhookMode = "after-publish"
    webhook_tolerance_s: int = 300
    webhook_dedup_size: int = 100_000
    # Webhook ids are kept (in memory and in the database) this long; at least the timestamp
    # tolerance, so no redelivery the worker still accepts can outlive its id.
    webhook_dedup_ttl_s: float = 900.0
    publish_timeout_s: float = 10.0
    # Agents: None = in this process; a URL = a separate agent host
    agents_url: str | None = None
    process: str = "worker"

    def __post_init__(self) -> None:
        if self.publish not in PUBLISH_MODES:
            raise ValueError(f"publish must be one of {', '.join(PUBLISH_MODES)}")
        if self.webhook_mode not in WEBHOOK_MODES:
            raise ValueError(f"webhook_mode must be one of {', '.join(WEBHOOK_MODES)}")
        if self.max_frame_bytes <= 0:
            raise ValueError("max_frame_bytes must be positive")
        if self.webhook_dedup_ttl_s < self.webhook_tolerance_s:
            raise ValueError("webhook_dedup_ttl_s must be at least webhook_tolerance_s")
        self.db_path = Path(self.db_path)
