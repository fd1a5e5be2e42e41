"""The simulated model's brain: rule-based travel answers over the catalog; pure, no I/O.

``compose(messages, catalog)`` looks at the last user message and the trip state in the system
message and returns the reply text plus whether answering needed a "tool call" (a flight or
hotel search), which the latency profile may charge extra for. Intents are tried in a fixed
order; anything unrecognised gets a helpful fallback listing what the agent can do.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from travelagent.agent.catalog import Catalog
from travelagent.agent.offers import Offer, resolve
from travelagent.agent.state import add_request, offers_for, state_from_messages

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
# A month named after a preposition ("in March", "early May"; a bare "may" is a verb).
_MONTH = re.compile(
    r"\b(?:in|during|for|around|early|mid|late|by|this|next|of)\s+(" + "|".join(MONTHS) + r")\b",
    re.I,
)
_WEATHER = re.compile(
    r"\bweather\b|\bclimate\b|\btemperatures?\b|\brain(?:y|fall)?\b|\bhumid|\bwarm\b|\bhot\b|"
    r"\bcold\b|\bsunny\b",
    re.I,
)
_SEASON = re.compile(r"\bwhen\b|\bbest time\b|\bseason\b", re.I)
_ABOUT = re.compile(
    r"\bwhat(?:'s| is) .+ like\b|\bthings to do\b|\btell me about\b|\btips?\b|\bworth\b|"
    r"\bwhat (?:to|should I) (?:do|see)\b",
    re.I,
)
# The intents' patterns, compiled once (each message is checked against several).
_ROUTE = re.compile(r"\bfrom\s+(.+?)\s+to\s+(.+?)(?:\s+on\s+|\s+for\s+|[?.!,]|$)", re.I)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FLIGHTS = re.compile(r"\bflights?\b|\bfly\b")
_ADD = re.compile(r"\badd\b")
_MY_TRIP = re.compile(r"\bmy (trip|plan)\b")
_HOTELS = re.compile(r"\bhotels?\b|\bstay\b|\baccommodation\b")
_BUDGET = re.compile(r"\bbudget\b|\bcheap|\bsave money\b|\bsaving\b")
_BUDGET_ASK = re.compile(r"\btips?\b|\bhow\b|\bcheap|\bsave\b|\bsaving\b|\?")
_TRIP = re.compile(r"\bbudget\b|\d{4}-\d{2}-\d{2}|\btrip\b|\bvisit|\bgo(ing)? to\b|\blike\b")
_SEASONS = ("winter", "spring", "summer", "autumn")
TROPICS_LAT = 23.5


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
    return _fare(str(flight["flight"]), flight["base_price"], date)


@functools.lru_cache(maxsize=4096)
def _fare(flight: str, base_price: Any, date: str) -> int:
    h = int(hashlib.sha256(f"{flight}|{date}".encode()).hexdigest()[:8], 16)
    return int(base_price * (0.85 + (h % 40) / 100))


def _flights(text: str, state: dict[str, Any], catalog: Catalog) -> Answer | None:
    m = _ROUTE.search(text)
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
    dm = _ISO_DATE.search(text)
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
    lines.append(
        "Say 'add the cheapest one' (or first, best rated, ...) or name a hotel to keep one."
    )
    return Answer("\n".join(lines), "hotels", tool_call=True)


def _itinerary_lines(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for i, item in enumerate(items, 1):
        where = f" ({item['city']})" if item.get("city") else ""
        if not where and item.get("date"):
            where = f" (on {item['date']})"
        kind = str(item.get("kind", "activity")).replace("_", " ")
        out.append(f"{i}. {item.get('name')}{where}: {kind}")
    return out


def _added(messages: list[dict[str, str]], state: dict[str, Any], catalog: Catalog) -> Answer:
    items = state.get("itinerary") or []
    what = add_request(last_user_text(messages))
    reference = resolve(what, offers_for(what, messages, catalog)) if what else None
    if reference is not None and reference.chosen is None:
        return _which_one(reference.candidates, reference.kind)
    if not items:
        return Answer("Tell me what to add, e.g. 'add day trip to Kyoto'.", "add")
    last = items[-1]
    if reference is not None and reference.chosen is not None:
        chosen = reference.chosen.item
        # Added before (not last now, or listed in an earlier reply): not added twice.
        if chosen != last or _listed_before(_itinerary_lines([chosen])[0][3:], messages):
            lines = [f"{chosen['name']} is already in your itinerary:"]
            return Answer("\n".join(lines + _itinerary_lines(items)), "add")
    lines = [f"Added {last.get('name')} to your itinerary. It now has {len(items)} item(s):"]
    return Answer("\n".join(lines + _itinerary_lines(items)), "add")


def _listed_before(line: str, messages: list[dict[str, str]]) -> bool:
    """Whether an earlier reply listed ``line`` as an itinerary entry ("2. <line>")."""
    entry = re.compile(rf"^\d+\. {re.escape(line)}$", re.M)
    return any(
        m.get("role") == "assistant" and entry.search(m.get("content", "")) for m in messages
    )


def _which_one(candidates: list[Offer], kind: str | None) -> Answer:
    """A reference that fits no offer, or several equally: ask rather than guess."""
    what = f"{kind}s" if kind else "flights or hotels"
    if not candidates:
        return Answer(
            f"I have not suggested any {what} lately. Ask me for {what} first, "
            "or tell me what to add by name.",
            "add",
        )
    lines = ["Which one do you mean?"]
    for i, o in enumerate(candidates, 1):
        price = f", ${o.price:,.0f}" if o.price is not None else ""
        lines.append(f"{i}. {o.label}{price}")
    lines.append("Say 'add the first one' (or second, cheapest, ...) or name it.")
    return Answer("\n".join(lines), "add")


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


def _month_in(text: str) -> int | None:
    m = _MONTH.search(text)
    return MONTHS.index(m.group(1).capitalize()) + 1 if m else None


def _season(month: int, lat: float) -> str:
    """ "early spring" for March north of the tropics (September south of them); "" in them."""
    if abs(lat) < TROPICS_LAT:
        return ""
    shifted = (month - 1 + (6 if lat < 0 else 0)) % 12 + 1  # the northern month with this season
    index = shifted % 12 // 3  # Dec-Feb winter, Mar-May spring, ...
    return f"{('early', 'mid', 'late')[shifted % 3]} {_SEASONS[index]}"


def _place(text: str, state: dict[str, Any], catalog: Catalog, intent: str) -> Answer:
    """Best season, the weather in a month and tips for the city asked about (any city: a
    question about Lisbon during a Rome trip is about Lisbon, and leaves the trip alone)."""
    found = catalog.find_cities(text)
    trip = state.get("basics", {}).get("destination")
    city = found[0] if found else catalog.city(trip or "")
    if city is None:
        return Answer(
            "Which city are you thinking of? I can tell you its best season, weather and tips.",
            intent,
        )
    name = str(city["name"])
    best = [MONTHS[m - 1] for m in city["best_months"]]
    month = _month_in(text)
    if month is None:
        lines = [
            f"The best months for {name} are {', '.join(best)}: mild weather and fewer crowds "
            "than peak season."
        ]
    else:
        season = _season(month, float(city["lat"]))
        when = f"{MONTHS[month - 1]} in {name} is {season}, and" if season else (
            f"{MONTHS[month - 1]} in {name} is"
        )  # fmt: skip
        if month in city["best_months"]:
            lines = [
                f"{when} one of its best months ({', '.join(best)}): mild weather and fewer "
                "crowds than peak season."
            ]
        else:
            lines = [
                f"{when} outside its best months ({', '.join(best)}): expect less settled "
                "weather or bigger crowds than then."
            ]
    tips = catalog.city_tips.get(name, [])[:2]
    if tips:
        lines += [f"Tips for {name}:", *(f"- {t}" for t in tips)]
    lines.append(f"Good day trips from there: {', '.join(city['day_trips'][:3])}.")
    if trip and trip != name:
        lines.append(f"Your trip is still to {trip}; say 'trip to {name}' to change it.")
    return Answer("\n".join(lines), intent)


def _budget(text: str, state: dict[str, Any], catalog: Catalog) -> Answer:
    found = catalog.find_cities(text)
    dest = str(found[0]["name"]) if found else state.get("basics", {}).get("destination")
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
    if _FLIGHTS.search(low):
        found = _flights(text, state, catalog)
        if found is not None:
            return found
    if _ADD.search(low):
        return _added(messages, state, catalog)
    if "itinerary" in low or _MY_TRIP.search(low):
        return _show(state)
    if _HOTELS.search(low):
        return _hotels(text, state, catalog)
    if _WEATHER.search(text):
        return _place(text, state, catalog, "weather")
    if _SEASON.search(text):
        return _place(text, state, catalog, "when")
    if _BUDGET.search(low) and _BUDGET_ASK.search(low):
        return _budget(text, state, catalog)
    if catalog.find_cities(text) and _ABOUT.search(text):
        return _place(text, state, catalog, "city")
    if _TRIP.search(low):
        return _trip_update(state)
    return _fallback()
