"""Outbound webhooks: a bounded queue, a few deliveries at a time, a keep-alive connection
each, retries.

Delivery rules:
- ``offer`` never blocks: if the queue is full it returns False and counts a rejection, so the
  caller can refuse the client's publish with an error (nothing is dropped silently).
- At most ``workers`` webhooks are in flight, each on a keep-alive connection of its own
  (``webhook_http.py``); one offered while fewer are is written at once, in the caller's pass
  of the event loop (the client's publish that made it), and a task reads the answer; one
  offered while ``workers`` are in flight waits in the queue for the next connection free.
- Each event gets one ``webhook-id`` and one body, signed fresh per attempt (the timestamp
  moves), and is retried on a transport error, a timeout or a retryable status (5xx, 408, 425,
  429) after the delays of ``retry_schedule_s``: by default the Standard Webhooks schedule
  (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt); tests and experiments
  shorten it. A job waiting for its next attempt holds no connection. The worker de-duplicates
  by ``webhook-id``.
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
from travelagent.realtime.webhook_http import Endpoint, Exchange, KeepAliveConnection
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
        self.queue: deque[WebhookJob] = deque()  # admitted, waiting for a free connection
        self.queue_size = queue_size
        self.workers = workers
        self.timeout_s = timeout_s
        self.retry_schedule_s = tuple(retry_schedule_s)
        self.on_dead_letter = on_dead_letter
        self.outbox = outbox
        self.dead_letters: deque[DeadLetter] = deque(maxlen=MAX_DEAD_LETTERS)
        self.counters = WebhookCounters()
        self._connections: list[KeepAliveConnection] = []  # every one opened, free or not
        self._free: list[KeepAliveConnection] = []
        self._delivering: set[asyncio.Task[None]] = set()  # at most ``workers``
        self._waiting: set[asyncio.Task[None]] = set()
        self._started = False

    def start(self) -> None:
        # Neither httpx nor aiohttp's client: under tens of concurrent requests their
        # per-request work costs the realtime service more CPU than everything else a message
        # does there (webhook_http.py), and would land on the webhook leg being measured.
        self._started = True
        if self.outbox is not None:  # what an earlier process admitted and never finished
            for owed in self.outbox.owed():
                trace = Trace.from_wire_or_none(owed.trace) if owed.trace else None
                job = WebhookJob(owed.event, trace, owed.webhook_id, owed.attempts)
                self._wait_and_queue(job, 0.0)

    def has_room(self, extra: int = 0) -> bool:
        """Whether one more event is taken once ``extra`` more are offered first. Events waiting
        for a retry count too: with the worker down they would otherwise pile up without end
        while the queue itself stays empty."""
        if self.queue_size <= 0:
            return True
        return len(self.queue) + len(self._waiting) + extra < self.queue_size

    def offer(self, job: WebhookJob) -> bool:
        if not self.has_room():
            self.counters.rejected_full += 1
            return False
        if self.outbox is not None:
            self.outbox.admitted(
                job.webhook_id, job.event, job.trace.to_wire() if job.trace else None
            )
        self._submit(job)
        return True

    def stats(self) -> dict[str, int]:
        return self.counters.as_dict(len(self.queue), len(self._waiting))

    async def aclose(self, *, drain_timeout_s: float = 2.0) -> None:
        """Give queued events a moment to go out, then stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout_s
        while self._delivering and (remaining_s := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._delivering), timeout=remaining_s)  # queued ones too
        self._started = False
        tasks = [*self._delivering, *self._waiting]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._delivering.clear()
        self._waiting.clear()
        for conn in self._connections:
            conn.close()
        self._connections, self._free = [], []

    def _submit(self, job: WebhookJob) -> None:
        """Deliver ``job`` now if fewer than ``workers`` are in flight, else queue it."""
        if not self._started or len(self._delivering) >= self.workers:
            self.queue.append(job)
            return
        if self._free:
            conn = self._free.pop()
        else:
            conn = KeepAliveConnection(self.endpoint)
            self._connections.append(conn)
        task = asyncio.create_task(self._work(conn, job, self._begin(job, conn)))
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)

    async def _work(
        self, conn: KeepAliveConnection, job: WebhookJob, exchange: Exchange | None
    ) -> None:
        """Deliver ``job``, then the queued ones, on ``conn``; then free it."""
        try:
            while True:
                try:
                    await self._deliver(job, conn, exchange)
                except Exception:  # a bug must not strand the job or the connection
                    log.exception("webhook %s: unexpected error", esc(job.webhook_id))
                    self.counters.failed += 1
                if not self.queue or not self._started:
                    break
                job = self.queue.popleft()
                exchange = self._begin(job, conn)
        finally:
            self._free.append(conn)

    def _body(self, job: WebhookJob) -> bytes:
        if job.trace is not None:
            job.trace.try_stamp("realtime.webhook", PROCESS)  # a full trace goes out as it is
            job.event["message"]["trace"] = job.trace.to_wire()
        return encode_event(job.event)

    def _begin(self, job: WebhookJob, conn: KeepAliveConnection) -> Exchange | None:
        """An attempt's request, written now if ``conn`` is open. None: it could not be made
        (a bug, never the caller's problem: ``offer`` runs inside a client's publish)."""
        job.attempts += 1
        try:
            if job.body is None:
                job.body = self._body(job)
            headers = signed_headers(self.secret, job.body, msg_id=job.webhook_id)
            return conn.begin(list(headers.items()), job.body)
        except Exception:
            log.exception("webhook %s: request not made", esc(job.webhook_id))
            return None

    async def _deliver(
        self, job: WebhookJob, conn: KeepAliveConnection, exchange: Exchange | None
    ) -> None:
        """One attempt, begun by ``_begin``; on a retryable failure the job waits (holding no
        connection) and queues again, or is dead-lettered when the schedule is spent."""
        if exchange is None:
            self._dead(job, "the request could not be made (see the service's log)")
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await conn.finish(exchange)
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
        self._submit(job)  # admitted once already: never refused

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
