"""The contracts between the worker, the agents and the LLM backends.

The worker owns sockets and its own stamps (``worker.recv``, ``worker.send``,
``worker.publish``); an agent owns its state, the input and output gates and the stamps
``agent.start``/``agent.done``; an LLM backend stamps ``llm.first``/``llm.done``. A reply leaves
the agent only through a ``ReplySink`` (gateway socket) or as values of ``handle_message`` /
``stream_message`` (webhook path), so the worker can stamp and frame it in one place.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from travelagent.agent.turns import Replies
from travelagent.wire.trace import Trace

# An agent event for listeners (the hybrid's room announcements), e.g.
# {"type": "itinerary", "agent": "u1", "itinerary": [...]}.
AgentEvent = dict[str, Any]
AgentListener = Callable[[AgentEvent], Awaitable[None]]


class ReplySink(Protocol):
    """Where a gateway reply goes; implemented by the worker over one socket."""

    async def start(self) -> None: ...  # streamed reply begins ({"streaming": true})
    async def chunk(self, text: str) -> None: ...  # new text ({"chunk": true})
    async def complete(self, text: str, trace: Trace | None) -> None: ...  # whole text, final
    async def response(self, text: str, trace: Trace | None) -> None: ...  # non-streamed reply
    async def error(self, error: str, trace: Trace | None) -> None: ...


class Agent(Protocol):
    """One TravelAgent instance (local, or a proxy to a separate agent host)."""

    name: str

    async def on_message(
        self,
        sink: ReplySink,
        text: str,
        *,
        trace: Trace | None,
        stream: bool,
        msg_id: str | None = None,
    ) -> None:
        """Handle one gateway message; the whole reply goes to ``sink``. Never raises for a
        failure the client should hear about: that becomes ``sink.error``."""
        ...

    async def handle_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> str:
        """RPC: text in, whole reply out (after the state it depends on is committed)."""
        ...

    def stream_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> AsyncGenerator[str, None]:
        """Yield reply chunks as the LLM produces them; when the iterator ends, the state is
        committed. Holds the agent's input gate until exhausted or closed.

        Every entry point keys the turn by ``msg_id`` (the trace's id if None): a second
        delivery of the same id never runs the agent again; it gets the stored reply (one
        chunk, when streamed), or waits for the run under way (see ``agent/turns.py``)."""
        ...

    def add_listener(self, listener: AgentListener) -> None: ...

    async def replies_after(self, after: str | None, ids: Sequence[str] = ()) -> Replies:
        """Committed replies after message ``after`` and of ``ids``, for a client that
        reconnects (``agent/turns.py``, ``Replies``); raise ``UnknownMessage`` for an
        ``after`` the agent does not know, ``AgentError`` if they cannot be read."""
        ...


class AgentDirectory(Protocol):
    """Finds the one live agent for an id (created on first use)."""

    def get(self, name: str) -> Agent: ...

    async def close(self) -> None: ...


class LLMBackend(Protocol):
    """Streams a completion; stamps ``llm.first`` and ``llm.done`` on ``trace`` if given.

    A backend may also offer ``async complete(messages, *, trace, process) -> str``: the same
    completion whole, with the same stamps. An unstreamed turn uses it where it exists (the
    simulated model's skips a pass through the event loop per token) and joins ``stream``
    where it does not.
    """

    def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
