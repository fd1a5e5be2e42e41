"""Outbound webhooks: a bounded queue, a few workers, one pooled HTTP client, retries.

Delivery rules:
- ``offer`` never blocks: if the queue is full it returns False and counts a rejection, so the
  caller can refuse the client's publish with an error (nothing is dropped silently).
- Each event gets one ``webhook-id`` and one body, signed fresh per attempt (the timestamp
  moves), and is retried with exponential backoff on a transport error, a timeout or a 5xx/429.
  The worker de-duplicates by ``webhook-id``. A 4xx other than 429 is final.
- The body is built (and a trace stamped ``realtime.webhook``) just before the first POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import encode_event, new_webhook_id, signed_headers

log = logging.getLogger(__name__)
PROCESS = "realtime"


@dataclass
class WebhookJob:
    event: dict[str, Any]
    trace: Trace | None = None  # stamped realtime.webhook, then placed in event.message.trace
    webhook_id: str = field(default_factory=new_webhook_id)


@dataclass
class WebhookCounters:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    rejected_full: int = 0

    def as_dict(self, queued: int) -> dict[str, int]:
        return {
            "webhooks_sent": self.sent,
            "webhooks_failed": self.failed,
            "webhooks_retried": self.retried,
            "webhooks_rejected_full": self.rejected_full,
            "webhooks_queued": queued,
        }


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str,
        *,
        queue_size: int = 1000,
        workers: int = 8,
        timeout_s: float = 5.0,
        max_attempts: int = 6,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.queue: asyncio.Queue[WebhookJob] = asyncio.Queue(maxsize=queue_size)
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.counters = WebhookCounters()
        self._client: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # aiohttp, not httpx: under tens of concurrent requests httpx's pool costs milliseconds
        # of CPU per request, which would land on the webhook leg being measured.
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.workers, limit_per_host=self.workers),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    def has_room(self, extra: int = 0) -> bool:
        """Whether the queue takes one more event once ``extra`` more are offered first."""
        if self.queue.maxsize <= 0:
            return True
        return self.queue.qsize() + extra < self.queue.maxsize

    def offer(self, job: WebhookJob) -> bool:
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counters.rejected_full += 1
            return False
        return True

    def stats(self) -> dict[str, int]:
        return self.counters.as_dict(self.queue.qsize())

    async def aclose(self, *, drain_timeout_s: float = 2.0) -> None:
        """Give queued events a moment to go out, then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), drain_timeout_s)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._deliver(job)
            except Exception:  # a bug must not kill the worker and strand the queue
                log.exception("webhook %s: unexpected error", job.webhook_id)
                self.counters.failed += 1
            finally:
                self.queue.task_done()

    def _body(self, job: WebhookJob) -> bytes:
        if job.trace is not None:
            job.trace.try_stamp("realtime.webhook", PROCESS)  # a full trace goes out as it is
            job.event["message"]["trace"] = job.trace.to_wire()
        return encode_event(job.event)

    async def _deliver(self, job: WebhookJob) -> None:
        assert self._client is not None
        body = self._body(job)
        delay_s = self.backoff_initial_s
        for attempt in range(1, self.max_attempts + 1):
            headers = signed_headers(self.secret, body, msg_id=job.webhook_id)
            reason = ""
            try:
                async with self._client.post(self.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        self.counters.sent += 1
                        return
                    reason = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status != 429:
                        text = await resp.text()
                        log.warning("webhook %s refused: %s %s", job.webhook_id, reason, text)
                        self.counters.failed += 1
                        return
            except (aiohttp.ClientError, TimeoutError) as err:
                reason = f"{type(err).__name__}: {err}"
            if attempt == self.max_attempts:
                break
            self.counters.retried += 1
            log.info("webhook %s attempt %d failed (%s)", job.webhook_id, attempt, reason)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, self.backoff_max_s)
        log.warning("webhook %s failed after %d attempts", job.webhook_id, self.max_attempts)
        self.counters.failed += 1


def now_ms() -> int:
    return int(time.time() * 1000)
