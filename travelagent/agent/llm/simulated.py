"""The simulated model: catalog answers streamed token by token on a seeded schedule."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from travelagent.agent.catalog import Catalog, load_catalog
from travelagent.agent.llm.answers import compose
from travelagent.agent.llm.profiles import (
    LatencyProfile,
    get_profile,
    message_seed,
    plan_ms,
    tokenize,
)
from travelagent.wire.trace import Trace


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

    def plan(self, messages: list[dict[str, str]]) -> tuple[list[str], list[float]]:
        """The tokens of the reply and their due times (ms); what ``stream`` will do."""
        answer = compose(messages, self.catalog)
        tokens = tokenize(answer.text)
        rng = random.Random(message_seed(self.seed, messages))
        return tokens, plan_ms(self.profile, rng, len(tokens), tool_call=answer.tool_call)

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        tokens, due_ms = self.plan(messages)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, token in enumerate(tokens):
            # Sleep to an absolute due time so per-token timer overshoot does not accumulate.
            delay_s = t0 + due_ms[i] / 1000 - loop.time()
            await asyncio.sleep(max(0.0, delay_s))
            if i == 0 and trace is not None:
                trace.stamp("llm.first", process)
            yield token
        if trace is not None:
            if not tokens:
                trace.stamp("llm.first", process)
            trace.stamp("llm.done", process)

    async def aclose(self) -> None:
        return None
