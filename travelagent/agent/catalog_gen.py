"""Generate the bundled travel catalog: ``python -m travelagent.agent.catalog_gen data/catalog``.

The catalog is synthetic except for the city facts (names, countries, IATA codes, rough
coordinates, commonly recommended months). Flights, hotels and prices are drawn from a seeded
``random.Random`` so the files are byte-for-byte reproducible: the committed files and
``generate()`` agree, which ``tests/agent/test_catalog.py`` checks. Nothing here is real
schedule or price data; it only has to look plausible and be stable, because the simulated LLM
answers from it and the latency measurements must not depend on the text changing between runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

SEED = 20261127

# name, country, IATA, latitude, longitude, best months (1-12), nearby day trips
CITIES: list[tuple[str, str, str, float, float, list[int], list[str]]] = [
    ("London", "United Kingdom", "LHR", 51.5, -0.1, [5, 6, 9], ["Oxford", "Bath", "Brighton"]),
    ("Paris", "France", "CDG", 48.9, 2.4, [4, 5, 6, 9, 10], ["Versailles", "Giverny", "Reims"]),
    ("Rome", "Italy", "FCO", 41.9, 12.5, [4, 5, 10], ["Tivoli", "Orvieto", "Ostia Antica"]),
    ("Barcelona", "Spain", "BCN", 41.4, 2.2, [5, 6, 9, 10], ["Montserrat", "Sitges", "Girona"]),
    ("Madrid", "Spain", "MAD", 40.4, -3.7, [4, 5, 9, 10], ["Toledo", "Segovia", "El Escorial"]),
    ("Lisbon", "Portugal", "LIS", 38.7, -9.1, [3, 4, 5, 9, 10], ["Sintra", "Cascais", "Evora"]),
    (
        "Amsterdam",
        "Netherlands",
        "AMS",
        52.4,
        4.9,
        [4, 5, 9],
        ["Haarlem", "Utrecht", "Zaanse Schans"],
    ),
    ("Berlin", "Germany", "BER", 52.5, 13.4, [5, 6, 9], ["Potsdam", "Spreewald", "Dresden"]),
    ("Prague", "Czechia", "PRG", 50.1, 14.4, [4, 5, 9, 10], ["Kutna Hora", "Cesky Krumlov"]),
    ("Vienna", "Austria", "VIE", 48.2, 16.4, [4, 5, 9, 10], ["Wachau Valley", "Bratislava"]),
    ("Athens", "Greece", "ATH", 37.9, 23.7, [4, 5, 6, 9, 10], ["Delphi", "Cape Sounion", "Hydra"]),
    ("Istanbul", "Turkey", "IST", 41.0, 29.0, [4, 5, 9, 10], ["Princes' Islands", "Bursa"]),
    ("Dubai", "United Arab Emirates", "DXB", 25.3, 55.3, [11, 12, 1, 2, 3], ["Abu Dhabi"]),
    ("Cairo", "Egypt", "CAI", 30.0, 31.2, [10, 11, 2, 3, 4], ["Giza", "Saqqara", "Alexandria"]),
    (
        "Cape Town",
        "South Africa",
        "CPT",
        -33.9,
        18.4,
        [11, 12, 1, 2, 3],
        ["Stellenbosch", "Cape Point"],
    ),
    (
        "Marrakech",
        "Morocco",
        "RAK",
        31.6,
        -8.0,
        [3, 4, 5, 10, 11],
        ["Atlas Mountains", "Essaouira"],
    ),
    (
        "Tokyo",
        "Japan",
        "HND",
        35.7,
        139.7,
        [3, 4, 10, 11],
        ["Kyoto", "Nikko", "Kamakura", "Hakone"],
    ),
    ("Kyoto", "Japan", "KIX", 35.0, 135.8, [3, 4, 10, 11], ["Nara", "Osaka", "Uji"]),
    ("Seoul", "South Korea", "ICN", 37.6, 127.0, [4, 5, 9, 10], ["Suwon", "DMZ", "Nami Island"]),
    ("Bangkok", "Thailand", "BKK", 13.8, 100.5, [11, 12, 1, 2], ["Ayutthaya", "Damnoen Saduak"]),
    ("Singapore", "Singapore", "SIN", 1.4, 103.8, [2, 3, 4, 7, 8], ["Sentosa", "Pulau Ubin"]),
    ("Bali", "Indonesia", "DPS", -8.7, 115.2, [4, 5, 6, 9], ["Ubud", "Nusa Penida", "Uluwatu"]),
    (
        "Sydney",
        "Australia",
        "SYD",
        -33.9,
        151.2,
        [9, 10, 11, 3, 4],
        ["Blue Mountains", "Hunter Valley"],
    ),
    ("Auckland", "New Zealand", "AKL", -36.8, 174.8, [12, 1, 2, 3], ["Waiheke Island", "Piha"]),
    (
        "New York",
        "United States",
        "JFK",
        40.7,
        -74.0,
        [4, 5, 6, 9, 10, 11],
        ["Hudson Valley", "Philadelphia"],
    ),
    ("San Francisco", "United States", "SFO", 37.8, -122.4, [9, 10], ["Napa Valley", "Muir Woods"]),
    (
        "Los Angeles",
        "United States",
        "LAX",
        34.1,
        -118.2,
        [3, 4, 5, 9, 10],
        ["Santa Barbara", "Joshua Tree"],
    ),
    ("Mexico City", "Mexico", "MEX", 19.4, -99.1, [3, 4, 5, 10, 11], ["Teotihuacan", "Puebla"]),
    ("Rio de Janeiro", "Brazil", "GIG", -22.9, -43.2, [12, 1, 2, 3], ["Petropolis", "Ilha Grande"]),
    ("Buenos Aires", "Argentina", "EZE", -34.6, -58.4, [3, 4, 5, 9, 10, 11], ["Tigre", "Colonia"]),
]

HOTEL_BRANDS = [
    "Park Hyatt",
    "Grand Central Hotel",
    "Harbour View Inn",
    "The Old Town Residence",
    "Riverside Suites",
    "Garden House",
    "Skyline Tower Hotel",
    "Station Hostel",
    "Boutique Nine",
    "The Artisan",
    "Palace Lane Hotel",
    "Budget Stay",
]
AIRLINES = [
    ("SA", "SkyArc"),
    ("BL", "BlueLine Air"),
    ("NW", "Northwind"),
    ("OC", "Ocean Air"),
    ("CR", "Crescent Airways"),
    ("PF", "Pacifica"),
]
NEIGHBOURHOODS = ["Old Town", "Centre", "Riverside", "Harbour", "Station District", "Arts Quarter"]
TIP_TEMPLATES = [
    "Buy a multi-day transit pass in {city}; it usually beats single tickets after three rides.",
    "Museums in {city} are quietest on weekday mornings; book timed entry online.",
    "Set lunches in {city} cost far less than dinner; look for menus posted outside.",
    "Stay near a metro or train line in {city} rather than in the priciest central blocks.",
    "Many sights in {city} have a free or reduced-price day each month; check before you go.",
    "Walking tours in {city} run on tips; they are a cheap first-day orientation.",
    "Carry a refillable water bottle; tap water in {city} is generally fine to drink.",
    "Airport trains into {city} are usually cheaper and more predictable than taxis.",
]
BUDGET_TIPS = [
    "Fly midweek (Tuesday or Wednesday); fares are often 10-20% lower than at weekends.",
    "Book flights six to ten weeks ahead for short-haul and two to four months for long-haul.",
    "Travel in the shoulder season: prices drop well before the weather does.",
    "Put one big expense first (the flight), then set a daily budget for the rest.",
    "Mix one splurge night with cheaper stays elsewhere on the trip.",
    "Use set lunches and markets for food; keep dinners for the places you care about.",
]
FLIGHTS_PER_ROUTE = 2


def _distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


def generate(seed: int = SEED) -> dict[str, Any]:
    """The whole catalog as plain data: cities, hotels, tips (JSON) and flights (rows)."""
    rng = random.Random(seed)
    cities: list[dict[str, Any]] = [
        {
            "name": name,
            "country": country,
            "iata": iata,
            "lat": lat,
            "lon": lon,
            "best_months": months,
            "day_trips": trips,
        }
        for name, country, iata, lat, lon, months, trips in CITIES
    ]
    hotels: list[dict[str, Any]] = []
    for city in cities:
        brands = rng.sample(HOTEL_BRANDS, 4)
        if city["name"] in ("Tokyo", "Paris", "New York", "Sydney") and "Park Hyatt" not in brands:
            brands[0] = "Park Hyatt"
        for brand in brands:
            luxury = brand == "Park Hyatt"
            price = rng.randint(380, 720) if luxury else rng.randint(45, 260)
            hotels.append(
                {
                    "name": f"{brand} {city['name']}",
                    "city": city["name"],
                    "neighbourhood": rng.choice(NEIGHBOURHOODS),
                    "stars": 5 if luxury else rng.randint(2, 4),
                    "price_per_night": price,
                    "rating": round(rng.uniform(3.6, 4.9), 1),
                }
            )
    tips = {
        str(city["name"]): [t.format(city=city["name"]) for t in rng.sample(TIP_TEMPLATES, 3)]
        for city in cities
    }
    flights: list[dict[str, Any]] = []
    for a in cities:
        for b in cities:
            if a is b:
                continue
            km = _distance_km((a["lat"], a["lon"]), (b["lat"], b["lon"]))
            # ~800 km/h cruise plus ~40 min taxi/climb; connections beyond ~9000 km.
            stops = 0 if km < 9000 else 1
            for _ in range(FLIGHTS_PER_ROUTE):
                code, _airline = rng.choice(AIRLINES)
                minutes = int(km / 800 * 60 + 40 + stops * rng.randint(70, 180))
                flights.append(
                    {
                        "flight": f"{code}{rng.randint(100, 9899)}",
                        "from": a["iata"],
                        "to": b["iata"],
                        "depart": f"{rng.randint(6, 22):02d}:{rng.choice([0, 15, 30, 45]):02d}",
                        "duration_min": minutes,
                        "stops": stops,
                        "base_price": int(60 + km * rng.uniform(0.05, 0.11)),
                    }
                )
    return {
        "cities": cities,
        "hotels": hotels,
        "tips": {"cities": tips, "budget": BUDGET_TIPS},
        "airlines": {code: name for code, name in AIRLINES},
        "flights": flights,
    }


FLIGHT_COLUMNS = ["flight", "from", "to", "depart", "duration_min", "stops", "base_price"]


def render(data: dict[str, Any]) -> dict[str, str]:
    """File name -> text, exactly as written to disk."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FLIGHT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(data["flights"])

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"

    return {
        "cities.json": dump(data["cities"]),
        "hotels.json": dump(data["hotels"]),
        "tips.json": dump(data["tips"]),
        "airlines.json": dump(data["airlines"]),
        "flights.csv": out.getvalue(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the catalog files into")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, text in render(generate(args.seed)).items():
        (args.out_dir / name).write_text(text, encoding="utf-8")
        total += len(text.encode())
    print(f"wrote {args.out_dir} ({total // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
