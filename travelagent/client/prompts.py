"""The travel questions load generators send, in a fixed, seeded rotation."""

from __future__ import annotations

import random

PROMPTS: tuple[str, ...] = (
    "flights from London to Tokyo on 2026-12-10",
    "hotels in Paris",
    "when is the best time to visit Lisbon?",
    "any budget tips for Rome?",
    "add a day trip to Kyoto to my itinerary",
    "show my itinerary",
    "flights from New York to Paris on 2026-12-01",
    "hotels in Tokyo under 200 a night",
    "I like museums and food markets",
    "when should I visit Barcelona?",
)


def prompt_cycle(seed: int = 0) -> list[str]:
    """A shuffled copy of the prompts; the same seed gives the same order."""
    order = list(PROMPTS)
    random.Random(seed).shuffle(order)
    return order
