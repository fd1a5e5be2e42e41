"""Outbound webhooks: a bounded queue, a few workers, a keep-alive connection each, retries.

Delivery rules:
- ``offer`` never blocks: if the queue is full it returns False and counts a rejection, so the
  caller can refuse the client's publish with an error (nothing is dropped silently).
- Each event gets one ``webhook-id`` and one body, signed fresh per attempt (the timestamp
  moves), and is retried on a transport error, a timeout or a retryable status (5xx, 408, 425,
  429) after the delays of ``retry_schedule_s``: by default the Standard Webhooks schedule
  (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt); tests and experiments
  shorten it. A job waiting for its next attempt holds no worker. The worker de-duplicates by
  ``webhook-id``.
- A webhook that gives up (the schedule is spent, or the worker refused it with another 4xx)
  is dead-lettered with its reason: kept in ``dead_letters`` and handed to ``on_dead_letter``,
  which tells the user (the service publishes an ``isError`` ``agent_response``).
- The body is built (and a trace stamped ``realtime.webhook``) just before the first POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from travelagent.logsafe import esc
from travelagent.realtime.http1 import HttpParseError
from travelagent.realtime.outbox import Outbox
from travelagent.realtime.webhook_http import Endpoint, KeepAliveConnection
from travelagent.wire.trace import Trace
from travelagent.wire.webhooks import (
    STANDARD_RETRY_SCHEDULE_S,
    encode_event,
    new_webhook_id,
    next_delay_s,
    retryable,
    signed_headers,
)

log = logging.getLogger(__name__)
PROCESS = "realtime"
MAX_DEAD_LETTERS: Final = 1000


@dataclass
class WebhookJob:
    event: dict[str, Any]
    trace: Trace | None = None  # stamped realtime.webhook, then placed in event.message.trace
    webhook_id: str = field(default_factory=new_webhook_id)
    attempts: int = 0
    body: bytes | None = None  # built once, before the first attempt


@dataclass(frozen=True)
class DeadLetter:
    """A webhook that was given up on, and why."""

    webhook_id: str
    event: dict[str, Any]
    reason: str
    attempts: int
    t_s: float


@dataclass
class WebhookCounters:
    sent: int = 0
    failed: int = 0  # dead-lettered
    retried: int = 0
    rejected_full: int = 0

    def as_dict(self, queued: int, waiting: int) -> dict[str, int]:
        return {
            "webhooks_sent": self.sent,
            "webhooks_failed": self.failed,
            "webhooks_retried": self.retried,
            "webhooks_rejected_full": self.rejected_full,
            "webhooks_queued": queued,
            "webhooks_waiting": waiting,  # failed at least once, waiting for the next attempt
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
        retry_schedule_s: Sequence[float] = STANDARD_RETRY_SCHEDULE_S,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        if any(d < 0 for d in retry_schedule_s):
            raise ValueError("retry delays must not be negative")
        self.url = url
        self.endpoint = Endpoint.from_url(url)
        self.secret = secret
        self.queue: asyncio.Queue[WebhookJob] = asyncio.Queue(maxsize=queue_size)
        self.workers = workers
        self.timeout_s = timeout_s
        self.retry_schedule_s = tuple(retry_schedule_s)
        self.on_dead_letter = on_dead_letter
        self.outbox = outbox
        self.dead_letters: deque[DeadLetter] = deque(maxlen=MAX_DEAD_LETTERS)
        self.counters = WebhookCounters()
        self._connections: list[KeepAliveConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        # Neither httpx nor aiohttp's client: under tens of concurrent requests their
        # per-request work costs the realtime service more CPU than everything else a message
        # does there (webhook_http.py), and would land on the webhook leg being measured.
        self._connections = [KeepAliveConnection(self.endpoint) for _ in range(self.workers)]
        self._tasks = [asyncio.create_task(self._work(c)) for c in self._connections]
        if self.outbox is not None:  # what an earlier process admitted and never finished
            for owed in self.outbox.owed():
                trace = Trace.from_wire_or_none(owed.trace) if owed.trace else None
                job = WebhookJob(owed.event, trace, owed.webhook_id, owed.attempts)
                self._wait_and_queue(job, 0.0)

    def has_room(self, extra: int = 0) -> bool:
        """Whether one more event is taken once ``extra`` more are offered first. Events waiting
        for a retry count too: with the worker down they would otherwise pile up without end
        while the queue itself stays empty."""
        if self.queue.maxsize <= 0:
            return True
        return self.queue.qsize() + len(self._waiting) + extra < self.queue.maxsize

    def offer(self, job: WebhookJob) -> bool:
        if not self.has_room():
            self.counters.rejected_full += 1
            return False
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counters.rejected_full += 1
            return False
        if self.outbox is not None:
            self.outbox.admitted(
                job.webhook_id, job.event, job.trace.to_wire() if job.trace else None
            )
        return True

    def stats(self) -> dict[str, int]:
        return self.counters.as_dict(self.queue.qsize(), len(self._waiting))

    async def aclose(self, *, drain_timeout_s: float = 2.0) -> None:
        """Give queued events a moment to go out, then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), drain_timeout_s)
        for t in [*self._tasks, *self._waiting]:
            t.cancel()
        for t in [*self._tasks, *self._waiting]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self._waiting.clear()
        for conn in self._connections:
            conn.close()
        self._connections = []

    async def _work(self, conn: KeepAliveConnection) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._deliver(job, conn)
            except Exception:  # a bug must not kill the worker and strand the queue
                log.exception("webhook %s: unexpected error", esc(job.webhook_id))
                self.counters.failed += 1
            finally:
                self.queue.task_done()

    def _body(self, job: WebhookJob) -> bytes:
        if job.trace is not None:
            job.trace.try_stamp("realtime.webhook", PROCESS)  # a full trace goes out as it is
            job.event["message"]["trace"] = job.trace.to_wire()
        return encode_event(job.event)

    async def _deliver(self, job: WebhookJob, conn: KeepAliveConnection) -> None:
        """One attempt; on a retryable failure the job waits (holding no worker) and queues
        again, or is dead-lettered when the schedule is spent."""
        if job.body is None:
            job.body = self._body(job)
        job.attempts += 1
        headers = signed_headers(self.secret, job.body, msg_id=job.webhook_id)
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await conn.post(list(headers.items()), job.body)
        except (OSError, HttpParseError, TimeoutError) as err:
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        else:
            if resp.status < 300:
                self.counters.sent += 1
                if self.outbox is not None:
                    self.outbox.delivered(job.webhook_id)
                return
            reason = f"worker answered HTTP {resp.status}"
            if not retryable(resp.status):
                text = resp.body.decode("utf-8", "replace")[:200]
                self._dead(job, f"{reason}: {text}" if text else reason)
                return
        delay_s = next_delay_s(self.retry_schedule_s, job.attempts)
        if delay_s is None:
            self._dead(job, f"gave up after {job.attempts} attempts; last: {reason}")
            return
        self.counters.retried += 1
        log.info(
            "webhook %s attempt %d failed (%s)", esc(job.webhook_id), job.attempts, esc(reason)
        )
        if self.outbox is not None:
            self.outbox.attempted(job.webhook_id, job.attempts)
        self._wait_and_queue(job, delay_s)

    def _wait_and_queue(self, job: WebhookJob, delay_s: float) -> None:
        task = asyncio.create_task(self._again(job, delay_s))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _again(self, job: WebhookJob, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.queue.put(job)  # admitted once already: waits for room, never refused

    def _dead(self, job: WebhookJob, reason: str) -> None:
        log.warning("webhook %s dead-lettered: %s", esc(job.webhook_id), esc(reason))
        self.counters.failed += 1
        letter = DeadLetter(job.webhook_id, job.event, reason, job.attempts, time.time())
        self.dead_letters.append(letter)
        if self.outbox is not None:
            self.outbox.dead(job.webhook_id, job.event, reason, job.attempts)
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(letter)
            except Exception:
                log.exception("webhook %s: dead-letter handler failed", esc(job.webhook_id))


def now_ms() -> int:
    return int(time.time() * 1000)
