"""LLM backends: the simulated model (default) and any OpenAI-compatible endpoint."""

from __future__ import annotations

from travelagent.agent.base import LLMBackend
from travelagent.agent.llm.profiles import PROFILES, LatencyProfile, get_profile, list_profiles
from travelagent.agent.llm.sse import LLMError

KINDS = ("simulated", "openai")

__all__ = [
    "KINDS",
    "PROFILES",
    "LLMError",
    "LatencyProfile",
    "get_profile",
    "list_profiles",
    "make_llm",
]


def make_llm(
    kind: str = "simulated",
    *,
    profile: str = "instant",
    seed: int = 0,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> LLMBackend:
    """Build a backend; a bad kind, profile or missing base URL is a ValueError saying why."""
    if kind == "simulated":
        from travelagent.agent.llm.simulated import SimulatedLLM

        return SimulatedLLM(profile=profile, seed=seed)
    if kind == "openai":
        if not base_url:
            raise ValueError("the openai LLM backend needs a base URL (--llm-base-url)")
        from travelagent.agent.llm.openai import OpenAILLM

        return OpenAILLM(base_url=base_url, model=model, api_key=api_key)
    raise ValueError(f"unknown LLM kind {kind!r}; valid kinds: {', '.join(KINDS)}")
