from __future__ import annotations

from pathlib import Path

import pytest

from travelagent.agent import catalog as catalog_module
from travelagent.agent import catalog_gen
from travelagent.agent.catalog import DEFAULT_CATALOG_DIR, load_catalog, read_catalog


def test_committed_catalog_files_equal_what_the_seeded_generator_writes() -> None:
    rendered = catalog_gen.render(catalog_gen.generate())
    for name, text in rendered.items():
        assert (DEFAULT_CATALOG_DIR / name).read_text(encoding="utf-8") == text, name


def test_generator_is_deterministic_and_seed_dependent() -> None:
    assert catalog_gen.render(catalog_gen.generate(1)) == catalog_gen.render(
        catalog_gen.generate(1)
    )
    assert catalog_gen.generate(1)["flights"] != catalog_gen.generate(2)["flights"]


def test_catalog_is_small() -> None:
    total = sum(p.stat().st_size for p in DEFAULT_CATALOG_DIR.iterdir())
    assert 10_000 < total < 500_000


def test_generator_cli_writes_a_readable_catalog(tmp_path: Path) -> None:
    assert catalog_gen.main([str(tmp_path)]) == 0
    cat = read_catalog(tmp_path)
    assert cat.city("Tokyo") is not None
    assert len(cat.flights) == len(load_catalog().flights)


def test_cities_resolve_by_name_or_iata_code_case_insensitively() -> None:
    cat = load_catalog()
    tokyo = cat.city("tokyo")
    assert tokyo is not None and tokyo["iata"] == "HND"
    assert cat.city("LHR") == cat.city("London")
    assert cat.city("Atlantis") is None
    assert [c["name"] for c in cat.find_cities("from Paris to New York")] == ["Paris", "New York"]


def test_every_city_has_hotels_tips_and_flights_to_every_other_city() -> None:
    cat = load_catalog()
    for city in cat.cities:
        assert len(cat.hotels_in(city["name"])) >= 3
        assert cat.city_tips[city["name"]]
    assert len(cat.flights_between("London", "Tokyo")) == catalog_gen.FLIGHTS_PER_ROUTE
    assert cat.flights_between("London", "Atlantis") == []


def test_hotel_found_by_brand_prefers_the_destination_city() -> None:
    cat = load_catalog()
    hotel = cat.find_hotel("the Park Hyatt", prefer_city="Tokyo")
    assert hotel is not None and hotel["name"] == "Park Hyatt Tokyo"
    assert cat.find_hotel("a tent in the woods") is None


def test_catalog_regenerates_in_memory_when_files_are_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAVELAGENT_CATALOG_DIR", str(tmp_path / "missing"))
    load_catalog.cache_clear()
    try:
        assert load_catalog().cities == load_catalog(str(DEFAULT_CATALOG_DIR)).cities
    finally:
        load_catalog.cache_clear()


def test_found_cities_are_remembered_by_text_and_the_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cat = load_catalog()
    text = "flights from London to Tokyo, then Lisbon"
    first = cat.find_cities(text)
    assert [c["name"] for c in first] == ["London", "Tokyo", "Lisbon"]
    first.clear()  # a caller's list is its own: the remembered answer is untouched
    assert [c["name"] for c in cat.find_cities(text)] == ["London", "Tokyo", "Lisbon"]
    assert cat.find_cities(text) == cat._scan_cities(text)
    monkeypatch.setattr(catalog_module, "FOUND_CACHE", 8)
    for i in range(50):
        assert cat.find_cities(f"hotels in Rome {i}")[0]["name"] == "Rome"
        assert len(cat._found) <= 8


def test_token_counts_are_remembered_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from travelagent.agent.llm import profiles

    monkeypatch.setattr(profiles, "COUNT_CACHE", 4)
    for i in range(20):
        text = f"Hotels in Rome, {i} nights: ok?"
        assert profiles.count_tokens(text) == len(profiles.tokenize(text))
        assert profiles.count_tokens(text) == len(profiles.tokenize(text))
        assert len(profiles._COUNTED) <= 4
