"""The travel questions load users ask (``--message-mix``): a named set or a text file."""

from __future__ import annotations

import random
from pathlib import Path

MIXES: dict[str, tuple[str, ...]] = {
    "default": (
        "I want to plan a trip to Paris in May.",
        "What are good hotels near the Eiffel Tower?",
        "Find me a flight from London to Rome next Friday.",
        "What should I pack for Tokyo in winter?",
        "Add a day trip to Kyoto to my itinerary.",
        "What is the weather like in Barcelona in June?",
        "Suggest a budget hotel in Lisbon.",
        "Show me my itinerary so far.",
    ),
    "short": ("Hi", "Paris?", "Hotels in Rome?", "Thanks"),
}


def load_mix(spec: str) -> tuple[str, ...]:
    """A mix by name, or the non-empty lines of a text file at ``spec``."""
    if spec in MIXES:
        return MIXES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"message mix {spec!r} is neither one of {sorted(MIXES)} nor a file")
    lines = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not lines:
        raise ValueError(f"message mix file {spec} holds no messages")
    return lines


def message_rng(seed: int, user_number: int, stream: str = "texts") -> random.Random:
    """The random source of user ``user_number``'s message sequence (or arrivals) for ``seed``.

    It depends on nothing else (not the cell, the path or the process), so user k of every cell
    run with the same seed asks the same questions in the same order and, with the simulated
    model, gets the same LLM timings: two cells then differ only in the path (paired cells).
    """
    return random.Random(f"{seed}:{stream}:u{user_number}")
