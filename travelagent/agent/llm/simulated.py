"""The simulated model: catalog answers streamed token by token on a seeded schedule.

``stream`` yields each token at its due time. ``complete`` is the same answer for a caller that
sends nothing on until the end (an unstreamed turn): the same text, the same stamps at the same
due times (``llm.first`` at the first token's, ``llm.done`` after the last token's), but one
sleep to each of those two times instead of one event-loop pass per token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from travelagent.agent.catalog import Catalog, load_catalog
from travelagent.agent.llm import lateness
from travelagent.agent.llm.answers import compose
from travelagent.agent.llm.profiles import (
    LatencyProfile,
    count_tokens,
    get_profile,
    message_seed,
    plan_ms,
    plan_span_ms,
    tokenize,
)
from travelagent.wire.trace import Trace


async def _sleep_until(loop: asyncio.AbstractEventLoop, due: float, *, record: bool) -> None:
    """Sleep to the loop time ``due``; with ``record``, a sleep that was needed records how late
    it woke (``lateness.RECORDER``, the self-check's timer lateness)."""
    delay_s = due - loop.time()
    if delay_s <= 0:
        await asyncio.sleep(0)
        return
    await asyncio.sleep(delay_s)
    if record:
        lateness.RECORDER.record(loop.time() - due)


class SimulatedLLM:
    """``LLMBackend`` answering from the catalog with a named latency profile."""

    def __init__(
        self,
        *,
        profile: str | LatencyProfile = "instant",
        seed: int = 0,
        catalog: Catalog | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, LatencyProfile) else get_profile(profile)
        self.seed = seed
        self.catalog = catalog or load_catalog()
        p = self.profile
        self._still = p.ttft_ms == p.token_interval_ms == p.tool_call_ms == (0, 0)

    def plan(self, messages: list[dict[str, str]]) -> tuple[list[str], list[float]]:
        """The tokens of the reply and their due times (ms); what ``stream`` will do."""
        answer = compose(messages, self.catalog)
        tokens = tokenize(answer.text)
        rng = random.Random(message_seed(self.seed, messages))
        return tokens, plan_ms(self.profile, rng, len(tokens), tool_call=answer.tool_call)

    async def complete(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> str:
        """The whole reply at the last token's due time (``stream`` joined, without its
        per-token passes through the event loop)."""
        answer = compose(messages, self.catalog)
        n = count_tokens(answer.text)
        if n == 0:
            if trace is not None:
                trace.stamp("llm.first", process)
                trace.stamp("llm.done", process)
            return answer.text
        if self._still:  # every draw is 0.0: no generator to seed
            first_ms = last_ms = 0.0
        else:
            rng = random.Random(message_seed(self.seed, messages))
            first_ms, last_ms = plan_span_ms(self.profile, rng, n, tool_call=answer.tool_call)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        if first_ms > 0:
            await _sleep_until(loop, t0 + first_ms / 1000, record=True)
        if trace is not None:
            trace.stamp("llm.first", process)
        if last_ms > first_ms:
            await _sleep_until(loop, t0 + last_ms / 1000, record=True)
        if trace is not None:
            trace.stamp("llm.done", process)
        return answer.text

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        tokens, due_ms = self.plan(messages)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, token in enumerate(tokens):
            # Sleep to an absolute due time so per-token timer overshoot does not accumulate.
            # The first and the last token are the releases the self-check judges, as for an
            # unstreamed answer: the tokens between wake while the worker drains the earlier
            # ones (its own publishing, the path's cost), not only when the machine is busy.
            edge = i == 0 or i == len(tokens) - 1
            await _sleep_until(loop, t0 + due_ms[i] / 1000, record=edge)
            if i == 0 and trace is not None:
                trace.stamp("llm.first", process)
            yield token
        if trace is not None:
            if not tokens:
                trace.stamp("llm.first", process)
            trace.stamp("llm.done", process)

    async def aclose(self) -> None:
        return None
