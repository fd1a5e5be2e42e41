"""What the agent just offered, and which of it the user means by "the first one".

Pure: the agent's recent replies and the catalog in, offers out; a phrase and the offers in,
the meant offer (or the candidates to ask about) out. The state rules (adding to the itinerary)
and the simulated model (saying what was added) call the same functions on the same recent
replies, so what the agent does and what it says always agree.

Design rules:
- Offers are read back from the reply's text by catalog lookups (flight numbers, hotel names),
  not from hidden state: a reply from a real model that names catalog items works the same, and
  nothing new needs storing.
- A phrase is a reference only when it is *all* reference ("the cheaper hotel", "that flight",
  "it", "option 2"); "the Park Hyatt" or "day trip to Kyoto" never are.
- A reference that fits several offers equally ("that hotel" after four hotels) is not guessed:
  the agent asks which one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from travelagent.agent.catalog import Catalog

_FLIGHT_HEAD = re.compile(
    r"Flights from (.+?) \((\w{3})\) to (.+?) \((\w{3})\)(?: on (\d{4}-\d{2}-\d{2}))?"
)
_FLIGHT_CODE = re.compile(r"\b([A-Z]{2}\d{3,4})\b")
_PRICE = re.compile(r"\$\s?(\d[\d,]*)")
_BULLET = re.compile(r"\s*[-*•]\s+")
# Assistant replies looked back through for offers: few enough that the simulated model, which
# sees only the recent messages, finds the same list as the state rules.
LOOKBACK = 3

_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
    "fifth": 4, "5th": 4, "sixth": 5, "6th": 5, "last": -1,
}  # fmt: skip
# superlative or comparative -> (offer attribute, lowest wins?)
_RANKS = {
    "cheaper": ("price", True), "cheapest": ("price", True), "less expensive": ("price", True),
    "least expensive": ("price", True), "more expensive": ("price", False),
    "most expensive": ("price", False), "pricier": ("price", False),
    "priciest": ("price", False), "best rated": ("rating", False),
    "highest rated": ("rating", False), "better rated": ("rating", False),
    "top rated": ("rating", False), "shorter": ("duration_min", True),
    "shortest": ("duration_min", True), "faster": ("duration_min", True),
    "fastest": ("duration_min", True), "quickest": ("duration_min", True),
    "earlier": ("depart", True), "earliest": ("depart", True), "later": ("depart", False),
    "latest": ("depart", False), "best": ("best", True), "better": ("best", True),
}  # fmt: skip
_NOUNS = {"one": None, "option": None, "flight": "flight", "fare": "flight", "hotel": "hotel"}
_DETERMINERS = ("the", "that", "this")
_TAIL = frozenset({"you", "just", "suggested", "recommended", "mentioned", "offered", "listed"})
_NUMBERED = re.compile(r"(?:option|number|no\.?|#)\s*(\d)")
_POLITE = re.compile(r"(?:,?\s+(?:please|for me|too|as well|then))+$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference phrase: which kind it names, and how it picks among the offers."""

    kind: str | None = None
    index: int | None = None  # an ordinal, 0-based (-1: the last)
    rank: tuple[str, bool] | None = None  # (offer attribute, lowest wins?)
    nonstop: bool = False


def parse_reference(phrase: str) -> Reference | None:
    """``phrase`` as a reference, or None when it is anything else ("the Park Hyatt")."""
    p = _POLITE.sub("", phrase.strip().lower().rstrip(".!?").strip())
    numbered = _NUMBERED.fullmatch(p)
    if numbered:
        return Reference(index=int(numbered.group(1)) - 1)
    words = p.replace("-", " ").split()
    if words in (["it"], ["that"], ["this"]):
        return Reference()
    if words and words[0] in _DETERMINERS:
        words = words[1:]
    while len(words) > 1 and words[-1] in _TAIL:
        words = words[:-1]
    kind, has_noun = None, False
    if words and words[-1] in _NOUNS:
        kind, has_noun, words = _NOUNS[words[-1]], True, words[:-1]
    modifier = " ".join(words)
    if not modifier:
        return Reference(kind=kind) if has_noun else None
    if modifier in _ORDINALS:
        return Reference(kind=kind, index=_ORDINALS[modifier])
    if modifier in _RANKS:
        return Reference(kind=kind, rank=_RANKS[modifier])
    if modifier in ("nonstop", "non stop", "direct"):
        return Reference(kind=kind or "flight", nonstop=True)
    return None


@dataclass(frozen=True)
class Offer:
    kind: str  # "flight" | "hotel"
    label: str  # the flight number or hotel name, as the reply wrote it
    item: dict[str, Any]  # what goes into the itinerary
    price: float | None = None
    rating: float | None = None
    duration_min: int | None = None
    depart: str | None = None
    stops: int | None = None
    mentions: int = 1  # a reply names its recommendation twice ("The best value is ...")


@dataclass(frozen=True)
class Resolution:
    """What a reference phrase picked: one offer, or several to ask about (``chosen`` None)."""

    chosen: Offer | None
    candidates: list[Offer] = field(default_factory=list)
    kind: str | None = None  # the kind the phrase named ("flight", "hotel"), if any


def latest_offers(
    messages: list[dict[str, str]], catalog: Catalog, *, kind: str | None = None
) -> list[Offer]:
    """The offers (of ``kind``, if given) of the agent's most recent reply that made any,
    looking back at most ``LOOKBACK`` replies: "add the second one too" still finds the list
    after an "Added ...", and "the first flight" the flights before a list of hotels."""
    replies = [m.get("content", "") for m in messages if m.get("role") == "assistant"]
    for text in reversed(replies[-LOOKBACK:]):
        offers = [o for o in offers_in(text, catalog) if kind is None or o.kind == kind]
        if offers:
            return offers
    return []


def offers_in(text: str, catalog: Catalog) -> list[Offer]:
    """Flights and hotels the reply ``text`` offered, in the order it listed them."""
    found: list[tuple[int, Offer]] = []
    head = _FLIGHT_HEAD.search(text)
    date = head.group(5) if head else None
    rows = catalog.flights_between(head.group(1), head.group(3)) if head else catalog.flights
    by_code: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_code.setdefault(str(row["flight"]), row)
    seen: set[str] = set()
    lines = [line for line in text.splitlines() if _BULLET.match(line)]
    for line in lines:
        for m in _FLIGHT_CODE.finditer(line):
            code = m.group(1)
            if code in seen or code not in by_code:
                continue
            seen.add(code)
            row = by_code[code]
            price = _PRICE.search(line[m.end() :])
            found.append((text.find(code), _flight_offer(row, catalog, date, price, text)))
    listed = "\n".join(lines)
    for hotel in catalog.hotels:
        name = str(hotel["name"])
        if name in listed:
            pos = text.find(name)
            item = {"kind": "hotel", "name": name, "city": hotel["city"]}
            offer = Offer(
                "hotel",
                name,
                item,
                price=float(hotel["price_per_night"]),
                rating=float(hotel["rating"]),
                mentions=text.count(name),
            )
            found.append((pos, offer))
    return [o for _, o in sorted(found, key=lambda p: p[0])]


def _flight_offer(
    row: dict[str, Any], catalog: Catalog, date: str | None, price: re.Match[str] | None, text: str
) -> Offer:
    origin = catalog.city(str(row["from"]))
    dest = catalog.city(str(row["to"]))
    a = str(origin["name"]) if origin else str(row["from"])
    b = str(dest["name"]) if dest else str(row["to"])
    item: dict[str, Any] = {
        "kind": "flight",
        "name": f"{row['flight']} {a} to {b}, departs {row['depart']}",
        "flight": str(row["flight"]),
        "from": a,
        "to": b,
    }
    if date:
        item["date"] = date
    return Offer(
        "flight",
        str(row["flight"]),
        item,
        price=float(price.group(1).replace(",", "")) if price else float(row["base_price"]),
        duration_min=int(row["duration_min"]),
        depart=str(row["depart"]),
        stops=int(row["stops"]),
        mentions=text.count(str(row["flight"])),
    )


def resolve(phrase: str, offers: list[Offer]) -> Resolution | None:
    """The offer ``phrase`` means, the candidates when it is ambiguous, or None when the phrase
    is not a reference at all."""
    ref = parse_reference(phrase)
    if ref is None:
        return None
    pool = [o for o in offers if ref.kind is None or o.kind == ref.kind]
    if ref.nonstop:
        pool = [o for o in pool if o.stops == 0]
    if not pool:
        return Resolution(None, [], ref.kind)
    if ref.index is not None:
        if -len(pool) <= ref.index < len(pool):
            return Resolution(pool[ref.index], pool, ref.kind)
        return Resolution(None, pool, ref.kind)
    if ref.rank is not None:
        attr, lowest = ref.rank
        if attr == "best":  # a flight's best is its fare (as the reply says), a hotel's its rating
            attr, lowest = ("price", True) if pool[0].kind == "flight" else ("rating", False)
        ranked = [o for o in pool if getattr(o, attr) is not None]
        if not ranked:
            return Resolution(None, pool, ref.kind)
        best = (min if lowest else max)(getattr(o, attr) for o in ranked)
        tied = [o for o in ranked if getattr(o, attr) == best]
        return Resolution(tied[0] if len(tied) == 1 else None, tied, ref.kind)
    # "that flight", "it": the only one, else the one the reply singled out, else ask.
    if len(pool) == 1:
        return Resolution(pool[0], pool, ref.kind)
    singled = [o for o in pool if o.mentions > 1]
    if len(singled) == 1:
        return Resolution(singled[0], pool, ref.kind)
    return Resolution(None, pool, ref.kind)
