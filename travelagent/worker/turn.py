"""One agent turn on the realtime path: agent reply → publications in the user's channel.

A ``RealtimeTurn`` remembers its reply once the agent produced it, so a webhook retried after a
failed publish re-publishes the same reply instead of asking the agent again (the agent's state
and the client see exactly one reply per message).

Publications are the original's ``agent_response`` frames: a start frame (``streaming``), chunk
frames (``chunk``) as the LLM produces them, and the final one (``complete``, whole text, with
the trace); or one frame with the whole text when not streaming; ``isError`` on failure.
Chunks are published in order by one drain task so the agent never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from travelagent.agent.base import Agent
from travelagent.logsafe import esc
from travelagent.wire.server_api import reply_key
from travelagent.wire.trace import Trace
from travelagent.worker.publish import Publisher, PublishError

log = logging.getLogger(__name__)

_END = object()


def agent_response(user_id: str, msg_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "agent_response", "userId": user_id, "id": msg_id, **fields}


@dataclass
class RealtimeTurn:
    agent: Agent
    publisher: Publisher
    channel: str
    user_id: str
    msg_id: str
    text: str
    trace: Trace
    stream: bool
    process: str = "worker"
    reply: str | None = None
    is_error: bool = False
    published: bool = False
    # what a redelivery waits on while the turn runs (the handler's future, or a background task)
    task: asyncio.Future[None] | None = field(default=None, repr=False)
    # called once the final is published (the webhook's de-duplicator lets go of the turn)
    on_published: Callable[[], None] | None = field(default=None, repr=False)

    async def run(self) -> None:
        """Produce the reply (once) and publish its final frame; raise PublishError if the
        realtime service did not take it."""
        if self.reply is None:
            await self._produce()
        if not self.published:
            await self._publish_final()

    async def _produce(self) -> None:
        if not self.stream:
            try:
                self.reply = await self.agent.handle_message(
                    self.text, trace=self.trace, msg_id=self.msg_id
                )
            except Exception as err:  # the client hears about it as an isError publication
                log.warning("agent %s failed: %s", esc(self.agent.name), esc(err))
                self.reply, self.is_error = f"agent error: {err}", True
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        drain = asyncio.create_task(self._drain(queue))
        parts: list[str] = []
        try:
            queue.put_nowait(agent_response(self.user_id, self.msg_id, streaming=True))
            async with contextlib.aclosing(
                self.agent.stream_message(self.text, trace=self.trace, msg_id=self.msg_id)
            ) as chunks:
                async for chunk in chunks:
                    parts.append(chunk)
                    queue.put_nowait(
                        agent_response(self.user_id, self.msg_id, chunk=True, text=chunk)
                    )
            self.reply = "".join(parts)
        except Exception as err:
            log.warning("agent %s failed while streaming: %s", esc(self.agent.name), esc(err))
            self.reply, self.is_error = f"agent error: {err}", True
        finally:
            queue.put_nowait(_END)
            try:
                await drain
            except PublishError as err:
                # Chunks are best effort (the final frame carries the whole text); say so.
                log.warning("chunk publish failed on %s: %s", esc(self.channel), esc(err))

    async def _drain(self, queue: asyncio.Queue[Any]) -> None:
        """Publish queued frames in order. Chunks that queued up while a publish was in flight
        go out together as one chunk publication, so a slow publish path delays the stream by
        one round trip instead of one round trip per token."""
        failure: PublishError | None = None
        pending: Any = None
        chunks = 0
        while True:
            item = pending if pending is not None else await queue.get()
            pending = None
            if item is _END:
                break
            if item.get("chunk"):
                texts = [item["text"]]
                while not queue.empty():
                    nxt = queue.get_nowait()
                    if nxt is _END or not nxt.get("chunk"):
                        pending = nxt
                        break
                    texts.append(nxt["text"])
                if len(texts) > 1:
                    item = {**item, "text": "".join(texts)}
            if item.get("chunk"):
                key = reply_key(self.msg_id, "chunk", chunks)
                chunks += 1
            else:
                key = reply_key(self.msg_id, "start")
            if failure is None:
                try:
                    await self.publisher.publish(self.channel, item, idempotency_key=key)
                except PublishError as err:
                    failure = err  # keep draining so the producer never blocks
        if failure is not None:
            raise failure

    async def _publish_final(self) -> None:
        assert self.reply is not None
        self.trace.try_stamp("worker.publish", self.process)
        if self.is_error:
            data = agent_response(self.user_id, self.msg_id, text=self.reply, isError=True)
        elif self.stream:
            data = agent_response(self.user_id, self.msg_id, text=self.reply, complete=True)
        else:
            data = agent_response(self.user_id, self.msg_id, text=self.reply)
        data["trace"] = self.trace.to_wire()
        try:
            await self.publisher.publish(
                self.channel, data, idempotency_key=reply_key(self.msg_id, "final")
            )
        except PublishError:
            # Leave the stamp list as it was so a retry stamps worker.publish afresh.
            self.trace.stamps.pop()
            raise
        self.published = True
        if self.on_published is not None:
            self.on_published()
