"""The travel catalog the simulated model answers from (``data/catalog/``).

Loaded once per process; lookups are pure. When the files are not next to the package (an
installed wheel without the repository), the catalog is regenerated in memory from the same
seeded generator, so answers are identical either way.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from travelagent.agent import catalog_gen

CATALOG_DIR_ENV = "TRAVELAGENT_CATALOG_DIR"
DEFAULT_CATALOG_DIR = Path(__file__).resolve().parents[2] / "data" / "catalog"
FOUND_CACHE = 4096  # texts whose cities are remembered; all forgotten at once when full


@dataclass(frozen=True)
class Catalog:
    cities: list[dict[str, Any]]
    hotels: list[dict[str, Any]]
    flights: list[dict[str, Any]]
    city_tips: dict[str, list[str]]
    budget_tips: list[str]
    airlines: dict[str, str]

    def city(self, text: str) -> dict[str, Any] | None:
        """The city named (or coded, e.g. ``NRT``/``HND``) by ``text``, case-insensitively."""
        key = text.strip().lower()
        for c in self.cities:
            if key in (str(c["name"]).lower(), str(c["iata"]).lower()):
                return c
        return None

    def find_cities(self, text: str) -> list[dict[str, Any]]:
        """Cities mentioned in ``text``, in order of appearance."""
        found = self._found.get(text)
        if found is None:
            if len(self._found) >= FOUND_CACHE:
                self._found.clear()
            found = self._found[text] = self._scan_cities(text)
        return list(found)

    @cached_property
    def _found(self) -> dict[str, list[dict[str, Any]]]:
        # By text: a message and its pieces are looked up several times per turn (the state's
        # rules, then the model's answer), and load generators repeat their questions.
        return {}

    def _scan_cities(self, text: str) -> list[dict[str, Any]]:
        low = text.lower()
        found: list[tuple[int, dict[str, Any]]] = []
        for c, by_name, by_code in self._city_patterns:
            m = by_name.search(low) or by_code.search(text)
            if m is not None:
                found.append((m.start(), c))
        return [c for _, c in sorted(found, key=lambda p: p[0])]

    @cached_property
    def _city_patterns(self) -> list[tuple[dict[str, Any], re.Pattern[str], re.Pattern[str]]]:
        # Compiled once per catalog: every message is checked against every city.
        return [
            (
                c,
                re.compile(rf"\b{re.escape(str(c['name']).lower())}\b"),
                re.compile(rf"\b{re.escape(str(c['iata']))}\b"),
            )
            for c in self.cities
        ]

    def hotels_in(self, city: str) -> list[dict[str, Any]]:
        return sorted(
            (h for h in self.hotels if h["city"] == city), key=lambda h: h["price_per_night"]
        )

    def find_hotel(self, text: str, *, prefer_city: str | None = None) -> dict[str, Any] | None:
        """A hotel whose name (or brand, e.g. "the Park Hyatt") appears in ``text``."""
        low = text.lower()
        matches = [h for h, name, _ in self._hotel_names if name in low]
        if not matches:
            # "the Park Hyatt" names the brand; the hotel name is "<brand> <city>".
            matches = [h for h, _, brand in self._hotel_names if brand in low]
        if prefer_city:
            local = [h for h in matches if h["city"] == prefer_city]
            matches = local or matches
        return matches[0] if matches else None

    @cached_property
    def _hotel_names(self) -> list[tuple[dict[str, Any], str, str]]:
        # Lower-cased once per catalog: every "add ..." request is checked against every hotel.
        return [
            (h, str(h["name"]).lower(), str(h["name"])[: -len(str(h["city"])) - 1].lower())
            for h in self.hotels
        ]

    def flights_between(self, origin: str, dest: str) -> list[dict[str, Any]]:
        a, b = self.city(origin), self.city(dest)
        if a is None or b is None:
            return []
        return list(self._routes.get((str(a["iata"]), str(b["iata"])), []))

    @cached_property
    def _routes(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        # An index, so a flight search does not scan every row (it sits on the agent's hot path).
        routes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for f in sorted(self.flights, key=lambda f: f["depart"]):
            routes.setdefault((str(f["from"]), str(f["to"])), []).append(f)
        return routes


def _from_data(data: dict[str, Any]) -> Catalog:
    return Catalog(
        cities=data["cities"],
        hotels=data["hotels"],
        flights=data["flights"],
        city_tips=data["tips"]["cities"],
        budget_tips=data["tips"]["budget"],
        airlines=data["airlines"],
    )


def read_catalog(directory: Path) -> Catalog:
    """Read the catalog files from ``directory``; raise FileNotFoundError if one is missing."""

    def load(name: str) -> Any:
        return json.loads((directory / name).read_text(encoding="utf-8"))

    with (directory / "flights.csv").open(encoding="utf-8", newline="") as f:
        flights: list[dict[str, Any]] = []
        for row in csv.DictReader(f):
            flights.append(
                {
                    **row,
                    "duration_min": int(row["duration_min"]),
                    "stops": int(row["stops"]),
                    "base_price": int(row["base_price"]),
                }
            )
    return _from_data(
        {
            "cities": load("cities.json"),
            "hotels": load("hotels.json"),
            "tips": load("tips.json"),
            "airlines": load("airlines.json"),
            "flights": flights,
        }
    )


@cache
def load_catalog(directory: str | None = None) -> Catalog:
    """The catalog from ``directory``, ``$TRAVELAGENT_CATALOG_DIR``, or ``data/catalog``."""
    path = Path(directory or os.environ.get(CATALOG_DIR_ENV) or DEFAULT_CATALOG_DIR)
    if (path / "cities.json").exists():
        return read_catalog(path)
    if directory is not None:
        raise FileNotFoundError(f"no travel catalog in {path} (expected cities.json)")
    return _from_data(catalog_gen.generate())
