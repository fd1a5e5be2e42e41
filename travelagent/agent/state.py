"""A TravelAgent's state and the pure rules that update it from a user message.

State follows the original agent: trip basics (destination, start and end date, budget),
preferences, the current itinerary, and the recent messages. Updating it is pure (text in,
changes out) so the agent can commit the change before any reply leaves, and tests can feed
sentences without an agent or a database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from travelagent.agent.catalog import Catalog
from travelagent.agent.offers import Offer, latest_offers, parse_reference, resolve

MAX_RECENT_MESSAGES = 50  # stored per agent; older messages are dropped on commit
CONTEXT_MESSAGES = 12  # recent messages sent to the LLM with each request

PREFERENCES = (
    "museums", "food", "nightlife", "beach", "coffee", "walkable", "hiking", "shopping",
    "art", "history", "architecture", "nature", "wine", "family", "luxury", "budget travel",
)  # fmt: skip
_PREF_ALIASES = {"museum": "museums", "restaurants": "food", "foodie": "food", "bars": "nightlife"}

STATE_MARKER = "Trip state (JSON): "
# Compiled once: a message is checked against every preference word.
_LIKES = re.compile(r"\b(like|love|enjoy|into|prefer|interested in|want)\b")
_PREF_WORDS = [
    (word, re.compile(rf"\b{re.escape(word)}\b")) for word in [*PREFERENCES, *_PREF_ALIASES]
]

_DATE = r"(\d{4}-\d{2}-\d{2})"
_ADD = re.compile(
    r"\badd\s+(?:a\s+|an\s+)?(.+?)(?:\s+to\s+(?:my\s+|the\s+)?(?:itinerary|trip|plan))?[.!?]*$",
    re.I,
)
_BUDGET = re.compile(r"budget\s+(?:of\s+|is\s+|to\s+)?(?:about\s+)?[$€£]?\s?(\d[\d,]*)", re.I)
_MONEY = re.compile(r"[$€£]\s?(\d[\d,]*)")
# Questions about a place ("what's the weather like in Lisbon?") name it without moving the trip.
ASKS_ABOUT = re.compile(
    r"\bwhen\b|\bbest time\b|\bweather\b|\bclimate\b|\bwhat(?:'s| is) .+ like\b", re.I
)
_DEST = re.compile(
    r"\b(?:trip to|travel(?:l?ing)? to|go(?:ing)? to|visit(?:ing)?|destination is|holiday in|"
    r"vacation in|fly(?:ing)? to)\s+", re.I
)  # fmt: skip


@dataclass
class TripState:
    destination: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    budget: float | None = None
    preferences: list[str] = field(default_factory=list)
    itinerary: list[dict[str, Any]] = field(default_factory=list)
    recent_messages: list[dict[str, str]] = field(default_factory=list)
    message_count: int = 0  # user+assistant messages ever committed (the next message's index)

    def copy(self) -> TripState:
        """A copy to change without touching this one: its lists are new, their items shared.

        Items are never changed in place (every rule appends, replaces or deletes whole items),
        so sharing them is safe, and a turn's copy costs a few list copies, not a deep copy.
        """
        return replace(
            self,
            preferences=list(self.preferences),
            itinerary=list(self.itinerary),
            recent_messages=list(self.recent_messages),
        )

    def basics(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "budget": self.budget,
        }

    def summary(self) -> dict[str, Any]:
        """What the LLM is told about the trip (the recent messages travel separately)."""
        return {
            "basics": self.basics(),
            "preferences": self.preferences,
            "itinerary": self.itinerary,
        }


@dataclass
class StateChange:
    basics: bool = False
    preferences: bool = False
    itinerary: bool = False

    @property
    def any(self) -> bool:
        return self.basics or self.preferences or self.itinerary


def _amount(text: str) -> float:
    return float(text.replace(",", ""))


def apply_user_message(state: TripState, text: str, catalog: Catalog) -> StateChange:
    """Update ``state`` in place from what the user said; say which parts changed."""
    change = StateChange()
    # Destination: an explicit "trip to X"-style phrase, or the target of a flight search.
    dest: dict[str, Any] | None = None
    low = text.lower()
    # "add day trip to X" and "when should I visit X?" name a place without moving the trip.
    asks_about = _ADD.search(text.strip()) is not None or ASKS_ABOUT.search(text) is not None
    m = None if asks_about else _DEST.search(text)
    if m:
        found = catalog.find_cities(text[m.end() :])
        dest = found[0] if found else None
    fm = re.search(r"\bflights?\b.*\bfrom\b.+?\bto\b\s+(.+)", text, re.I)
    if dest is None and fm and not asks_about:
        found = catalog.find_cities(fm.group(1))
        dest = found[0] if found else None
    if dest is not None and state.destination != dest["name"]:
        state.destination = str(dest["name"])
        change.basics = True
    dates = re.findall(_DATE, text)
    if len(dates) >= 2 and (state.start_date, state.end_date) != (dates[0], dates[1]):
        state.start_date, state.end_date = dates[0], dates[1]
        change.basics = True
    bm = _BUDGET.search(text) or (_MONEY.search(text) if "budget" in text.lower() else None)
    if bm and state.budget != _amount(bm.group(1)):
        state.budget = _amount(bm.group(1))
        change.basics = True
    if _LIKES.search(low):
        for word, pattern in _PREF_WORDS:
            pref = _PREF_ALIASES.get(word, word)
            if pattern.search(low) and pref not in state.preferences:
                state.preferences.append(pref)
                change.preferences = True
    item = None
    what = add_request(text)
    if what is not None:
        offered = offers_for(what, state.recent_messages, catalog)
        item = itinerary_item(text, catalog, destination=state.destination, offered=offered)
        # "add it" again does not add an offer twice (named items keep their old behaviour: the
        # load mix repeats "add a day trip to Kyoto", and the hybrid path announces each add)
        if item is not None and parse_reference(what) is not None and item in state.itinerary:
            item = None
    if item is not None:
        state.itinerary.append(item)
        change.itinerary = True
    return change


def offers_for(what: str, messages: list[dict[str, str]], catalog: Catalog) -> list[Offer]:
    """The offers a reference such as "the first flight" picks from (none for a name)."""
    ref = parse_reference(what)
    return latest_offers(messages, catalog, kind=ref.kind) if ref is not None else []


def add_request(text: str) -> str | None:
    """What an "add ... (to my itinerary)" request asks to add ("the first one"), or None."""
    m = _ADD.search(text.strip())
    if m is None:
        return None
    return m.group(1).strip().strip("\"'").strip() or None


def itinerary_item(
    text: str,
    catalog: Catalog,
    *,
    destination: str | None,
    offered: list[Offer] | None = None,
) -> dict[str, Any] | None:
    """The item an "add ... (to my itinerary)" request asks for, or None.

    A reference to what the agent just ``offered`` ("the first one", "the cheaper hotel",
    "that flight") is resolved against those offers (``offers.resolve``); one that fits none,
    or several equally, adds nothing (the agent then asks which one is meant)."""
    what = add_request(text)
    if what is None:
        return None
    reference = resolve(what, offered or [])
    if reference is not None:
        return dict(reference.chosen.item) if reference.chosen is not None else None
    hotel = catalog.find_hotel(what, prefer_city=destination)
    if hotel is not None:
        return {"kind": "hotel", "name": hotel["name"], "city": hotel["city"]}
    trip = re.match(r"(?:a\s+)?day[- ]trip\s+to\s+(.+)", what, re.I)
    if trip:
        place = trip.group(1).strip()
        city = catalog.city(place)
        return {"kind": "day_trip", "name": str(city["name"]) if city else place.title()}
    return {"kind": "activity", "name": what}


def system_prompt(agent_name: str, state: TripState) -> str:
    """The system message: who the agent is and the trip state as one JSON line.

    The state line is machine-readable on purpose: the simulated model reads it back with
    ``state_from_messages``, and a real model reads it as plain context. The message index makes
    the simulated model's latency draws per-message without changing the backend contract. The
    agent's name stands alone on the first line, which the simulated model's seed leaves out
    (``profiles.message_seed``): agents of different cells that live the same conversation then
    draw the same timings (paired cells).
    """
    return (
        f"You are TravelAgent for user {agent_name}, a concise, friendly travel planner.\n"
        f"Message index: {state.message_count}.\n"
        f"{STATE_MARKER}{summary_json(state)}"
    )


# The state line of recent turns, by what it is made of: most turns leave the trip as it was.
# Itinerary items are keyed by identity; the entry holds them, so no key's id can be reused by
# another object while it is remembered, and items are never changed in place (TripState.copy).
_SUMMARIES: dict[tuple[Any, ...], tuple[tuple[dict[str, Any], ...], str]] = {}
SUMMARY_CACHE = 1024  # state lines remembered; all forgotten at once when full


def summary_json(state: TripState) -> str:
    """``json.dumps(state.summary(), sort_keys=True, separators=(",", ":"))``, remembered."""
    items = tuple(state.itinerary)
    key = (
        state.destination, state.start_date, state.end_date, state.budget,
        tuple(state.preferences), tuple(map(id, items)),
    )  # fmt: skip
    hit = _SUMMARIES.get(key)
    if hit is not None:
        return hit[1]
    text = json.dumps(state.summary(), sort_keys=True, separators=(",", ":"))
    if len(_SUMMARIES) >= SUMMARY_CACHE:
        _SUMMARIES.clear()
    _SUMMARIES[key] = (items, text)
    return text


def llm_messages(agent_name: str, state: TripState) -> list[dict[str, str]]:
    """System prompt plus the recent conversation (which ends with the user's message)."""
    return [
        {"role": "system", "content": system_prompt(agent_name, state)},
        *state.recent_messages[-CONTEXT_MESSAGES:],
    ]


_READ: dict[str, Any] = {}  # state lines parsed, by text (read-only: never changed)
READ_CACHE = 1024


def state_from_messages(messages: list[dict[str, str]]) -> dict[str, Any]:
    """The trip state found in a system message, or an empty one. Callers only read it: a
    line seen recently gives the same object again."""
    for msg in messages:
        if msg.get("role") != "system":
            continue
        for line in msg.get("content", "").splitlines():
            if line.startswith(STATE_MARKER):
                obj = _READ.get(line)
                if obj is None:
                    try:
                        obj = json.loads(line[len(STATE_MARKER) :])
                    except json.JSONDecodeError:
                        break
                    if len(_READ) >= READ_CACHE:
                        _READ.clear()
                    _READ[line] = obj
                if isinstance(obj, dict):
                    return obj
    return {"basics": {}, "preferences": [], "itinerary": []}
