"""The simulated model's brain: rule-based travel answers over the catalog; pure, no I/O.

``compose(messages, catalog)`` looks at the last user message and the trip state in the system
message and returns the reply text plus whether answering needed a "tool call" (a flight or
hotel search), which the latency profile may charge extra for. Intents are tried in a fixed
order; anything unrecognised gets a helpful fallback listing what the agent can do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from travelagent.agent.catalog import Catalog
from travelagent.agent.state import state_from_messages

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    text: str
    intent: str
    tool_call: bool = False


def _fmt_duration(minutes: int) -> str:
    return f"{minutes // 60}h{minutes % 60:02d}"


def _price_on(flight: dict[str, Any], date: str | None) -> int:
    """A stable, date-dependent fare: the same flight and date always cost the same."""
    if not date:
        return int(flight["base_price"])
    h = int(hashlib.sha256(f"{flight['flight']}|{date}".encode()).hexdigest()[:8], 16)
    return int(flight["base_price"] * (0.85 + (h % 40) / 100))


def _flights(text: str, state: dict[str, Any], catalog: Catalog) -> Answer | None:
    m = re.search(r"\bfrom\s+(.+?)\s+to\s+(.+?)(?:\s+on\s+|\s+for\s+|[?.!,]|$)", text, re.I)
    if m is None:
        return None
    a = catalog.find_cities(m.group(1))
    b = catalog.find_cities(m.group(2))
    if not a or not b:
        names = ", ".join(str(c["name"]) for c in catalog.cities[:8])
        return Answer(
            "I could not place one of those cities in my catalog. I know, for example, "
            f"{names} and more; try their names or airport codes.",
            "flights",
        )
    origin, dest = a[0], b[0]
    if origin is dest:
        return Answer(f"{origin['name']} to itself is a short trip: no flight needed.", "flights")
    dm = re.search(r"\d{4}-\d{2}-\d{2}", text)
    date = dm.group(0) if dm else state.get("basics", {}).get("startDate")
    rows = catalog.flights_between(str(origin["name"]), str(dest["name"]))
    when = f"on {date}" if date else "(any day; tell me a date for exact fares)"
    lines = [f"Flights from {origin['name']} ({origin['iata']}) to {dest['name']} "
             f"({dest['iata']}) {when}:"]  # fmt: skip
    for f in rows:
        airline = catalog.airlines.get(str(f["flight"])[:2], "")
        stops = "nonstop" if f["stops"] == 0 else f"{f['stops']} stop"
        lines.append(
            f"- {f['flight']} {airline}, departs {f['depart']}, {_fmt_duration(f['duration_min'])}"
            f", {stops}, from ${_price_on(f, date)}"
        )
    cheapest = min(rows, key=lambda f: _price_on(f, date))
    lines.append(f"The best value is {cheapest['flight']}. Want me to add it to your itinerary?")
    return Answer("\n".join(lines), "flights", tool_call=True)


def _hotels(text: str, state: dict[str, Any], catalog: Catalog) -> Answer:
    found = catalog.find_cities(text)
    name = str(found[0]["name"]) if found else state.get("basics", {}).get("destination")
    if not name:
        return Answer("Which city should I look for hotels in?", "hotels")
    hotels = catalog.hotels_in(name)
    budget = state.get("basics", {}).get("budget")
    lines = [f"Hotels in {name}, cheapest first:"]
    for h in hotels:
        lines.append(
            f"- {h['name']} ({h['stars']}*, {h['neighbourhood']}), ${h['price_per_night']}/night,"
            f" rated {h['rating']}"
        )
    if budget:
        lines.append(f"With a total budget of ${budget:,.0f}, keep an eye on the nightly rate.")
    lines.append("Say 'add the <hotel> to my itinerary' to keep one.")
    return Answer("\n".join(lines), "hotels", tool_call=True)


def _itinerary_lines(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for i, item in enumerate(items, 1):
        where = f" ({item['city']})" if item.get("city") else ""
        kind = str(item.get("kind", "activity")).replace("_", " ")
        out.append(f"{i}. {item.get('name')}{where}: {kind}")
    return out


def _added(state: dict[str, Any]) -> Answer:
    items = state.get("itinerary") or []
    if not items:
        return Answer("Tell me what to add, e.g. 'add day trip to Kyoto'.", "add")
    last = items[-1]
    lines = [f"Added {last.get('name')} to your itinerary. It now has {len(items)} item(s):"]
    return Answer("\n".join(lines + _itinerary_lines(items)), "add")


def _show(state: dict[str, Any]) -> Answer:
    items = state.get("itinerary") or []
    basics = state.get("basics", {})
    head = "Your itinerary"
    if basics.get("destination"):
        head += f" for {basics['destination']}"
    if basics.get("startDate") and basics.get("endDate"):
        head += f", {basics['startDate']} to {basics['endDate']}"
    if not items:
        return Answer(f"{head} is empty so far. Ask for hotels or day trips to fill it.", "show")
    return Answer("\n".join([f"{head}:", *_itinerary_lines(items)]), "show")


def _when(text: str, state: dict[str, Any], catalog: Catalog) -> Answer:
    found = catalog.find_cities(text)
    city = found[0] if found else catalog.city(state.get("basics", {}).get("destination") or "")
    if city is None:
        return Answer("Which city are you thinking of? I can tell you its best season.", "when")
    months = [MONTHS[m - 1] for m in city["best_months"]]
    trips = ", ".join(city["day_trips"][:3])
    return Answer(
        f"The best months for {city['name']} are {', '.join(months)}: mild weather and fewer "
        f"crowds than peak season. Good day trips from there: {trips}.",
        "when",
    )


def _budget(state: dict[str, Any], catalog: Catalog) -> Answer:
    dest = state.get("basics", {}).get("destination")
    tips = list(catalog.budget_tips[:3])
    if dest and dest in catalog.city_tips:
        tips += catalog.city_tips[dest][:2]
    lines = ["Ways to stretch your budget:", *(f"- {t}" for t in tips)]
    return Answer("\n".join(lines), "budget")


def _trip_update(state: dict[str, Any]) -> Answer:
    b = state.get("basics", {})
    parts = []
    if b.get("destination"):
        parts.append(f"destination {b['destination']}")
    if b.get("startDate") and b.get("endDate"):
        parts.append(f"dates {b['startDate']} to {b['endDate']}")
    if b.get("budget"):
        parts.append(f"budget ${b['budget']:,.0f}")
    prefs = state.get("preferences") or []
    if prefs:
        parts.append("interests " + ", ".join(prefs))
    if not parts:
        return _fallback()
    return Answer(
        "Noted: " + "; ".join(parts) + ". Ask me for flights, hotels or the best time to go.",
        "trip",
    )


def _fallback() -> Answer:
    return Answer(
        "I can help plan your trip. Try: 'flights from London to Tokyo on 2026-12-10', "
        "'hotels in Tokyo', 'add the Park Hyatt to my itinerary', 'add day trip to Kyoto', "
        "'show my itinerary', 'when should I visit Lisbon?' or 'budget tips'.",
        "fallback",
    )


def last_user_text(messages: list[dict[str, str]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            return msg.get("content", "")
    return ""


def compose(messages: list[dict[str, str]], catalog: Catalog) -> Answer:
    """The reply to the last user message, given the trip state in the system message."""
    text = last_user_text(messages)
    state = state_from_messages(messages)
    low = text.lower()
    if re.search(r"\bflights?\b|\bfly\b", low):
        found = _flights(text, state, catalog)
        if found is not None:
            return found
    if re.search(r"\badd\b", low):
        return _added(state)
    if "itinerary" in low or re.search(r"\bmy (trip|plan)\b", low):
        return _show(state)
    if re.search(r"\bhotels?\b|\bstay\b|\baccommodation\b", low):
        return _hotels(text, state, catalog)
    if re.search(r"\bwhen\b|\bbest time\b|\bseason\b", low):
        return _when(text, state, catalog)
    if re.search(r"\bbudget\b|\bcheap|\bsave money\b|\bsaving\b", low) and re.search(
        r"\btips?\b|\bhow\b|\bcheap|\bsave\b|\bsaving\b|\?", low
    ):
        return _budget(state, catalog)
    if re.search(r"\bbudget\b|\d{4}-\d{2}-\d{2}|\btrip\b|\bvisit|\bgo(ing)? to\b|\blike\b", low):
        return _trip_update(state)
    return _fallback()
