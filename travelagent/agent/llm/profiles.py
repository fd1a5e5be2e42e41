"""Named latency profiles for the simulated model, and the seeded timing plan; pure, no I/O.

A profile gives ranges (milliseconds, drawn uniformly) for time to first token, the interval
between tokens, and the extra latency of a tool call (flight and hotel searches; it is added
before the first token, as a real model would call the tool and then start answering). Where
each number comes from is in docs/llm-profiles.md; the ``source`` field says it in one line.

Determinism: ``plan_ms`` draws from a ``random.Random`` seeded by ``message_seed`` (the run seed
and the request's own text: the trip state, the message index and the user's words, but not the
agent's name), so the same seed and profile give the same timings for the same message no matter
how many agents run at once or which path carried it.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    ttft_ms: tuple[float, float]  # time to first token (no tool call)
    token_interval_ms: tuple[float, float]  # between consecutive tokens
    tool_call_ms: tuple[float, float]  # extra, before the first token, for searches
    source: str


PROFILES: dict[str, LatencyProfile] = {
    p.name: p
    for p in (
        LatencyProfile("instant", (0, 0), (0, 0), (0, 0), "no delay: isolates network and agent"),
        LatencyProfile(
            "note",
            (40, 120),
            (0.3, 0.8),
            (5, 20),
            "calibrated so a short answer ends in ~50-180 ms, inside the note's 50-200 ms",
        ),
        LatencyProfile(
            "gpt-4o-mini-like",
            (300, 700),
            (7.5, 15),
            (300, 800),
            "hosted small model: public TTFT/throughput dashboards, ~0.3-0.7 s, ~65-130 tok/s",
        ),
        # A fast hosted model (Gemini Flash, Claude Haiku, Llama 70B on Groq-class hardware):
        # public latency leaderboards (Artificial Analysis, provider status pages, 2024-25) show
        # ~0.15-0.35 s to first token and ~150-300 output tokens/s (3.3-6.7 ms per token); a
        # tool round trip to a hosted search API is ~150-400 ms.
        LatencyProfile(
            "fast-hosted-like",
            (150, 350),
            (3.3, 6.7),
            (150, 400),
            "fast hosted model: public leaderboards, ~0.15-0.35 s TTFT, ~150-300 tok/s",
        ),
        LatencyProfile(
            "llama-8b-local-like",
            (60, 250),
            (10, 25),
            (100, 300),
            "Llama-3-8B 4-bit on one consumer GPU (llama.cpp/Ollama reports), ~40-100 tok/s",
        ),
    )
}


def list_profiles() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown LLM profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        ) from None


# Roughly BPE-sized pieces (~4 characters), so a profile's per-token interval means what it
# says. The final ``.`` alternative guarantees that the pieces always join back to the text.
_TOKEN = re.compile(r"\s?[^\W\d_]{1,5}|\s?\d{1,3}|\s?[^\w\s]|\s+|.", re.DOTALL)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


_COUNTED: dict[str, int] = {}
COUNT_CACHE = 4096  # answers whose token count is remembered; all forgotten at once when full


def count_tokens(text: str) -> int:
    """``len(tokenize(text))``; remembered by text (answers from the catalog repeat)."""
    n = _COUNTED.get(text)
    if n is None:
        if len(_COUNTED) >= COUNT_CACHE:
            _COUNTED.clear()
        n = _COUNTED[text] = len(_TOKEN.findall(text))
    return n


def message_seed(seed: int, messages: list[dict[str, str]]) -> int:
    """A per-message seed from the run seed and the request: the system prompt without its
    first line (the agent's name), and the user's text.

    Leaving the name out pairs cells: user k of two cells sends the same texts in the same
    order, so its agents hold the same state and message index and draw the same timings,
    whatever path carried the messages.
    """
    h = hashlib.sha256(str(seed).encode())
    for msg in messages:
        if msg.get("role") == "system":
            _, _, rest = msg.get("content", "").partition("\n")
            h.update(rest.encode())
    user = [m.get("content", "") for m in messages if m.get("role") == "user"]
    h.update(b"\0" + (user[-1] if user else "").encode())
    return int.from_bytes(h.digest()[:8], "big")


def plan_ms(
    profile: LatencyProfile, rng: random.Random, n_tokens: int, *, tool_call: bool
) -> list[float]:
    """Due time of each token, in ms after the request reached the model."""
    t = rng.uniform(*profile.ttft_ms)
    if tool_call:
        t += rng.uniform(*profile.tool_call_ms)
    if profile.token_interval_ms == (0, 0):  # every interval draws 0.0: t + 0.0 is t
        return [t] * n_tokens
    lo, hi = profile.token_interval_ms
    uniform = rng.uniform
    out = [t] if n_tokens else []
    for _ in range(n_tokens - 1):
        t += uniform(lo, hi)
        out.append(t)
    return out


def plan_span_ms(
    profile: LatencyProfile, rng: random.Random, n_tokens: int, *, tool_call: bool
) -> tuple[float, float]:
    """The first and the last due time of ``plan_ms`` (same draws, same sums), for
    ``n_tokens`` ≥ 1, without the list."""
    t = rng.uniform(*profile.ttft_ms)
    if tool_call:
        t += rng.uniform(*profile.tool_call_ms)
    first = t
    if profile.token_interval_ms != (0, 0):
        lo, hi = profile.token_interval_ms
        uniform = rng.uniform
        for _ in range(n_tokens - 1):
            t += uniform(lo, hi)
    return first, t
