"""Offers read back from a reply, and which one a reference phrase means (pure)."""

from __future__ import annotations

import pytest

from travelagent.agent.catalog import load_catalog
from travelagent.agent.llm.answers import compose
from travelagent.agent.offers import Offer, offers_in, parse_reference, resolve
from travelagent.agent.state import TripState, llm_messages


def reply_to(text: str) -> str:
    state = TripState(recent_messages=[{"role": "user", "content": text}])
    return compose(llm_messages("u1", state), load_catalog()).text


@pytest.mark.parametrize(
    "phrase",
    ["the first one", "that flight", "it", "it please", "the cheaper hotel", "option 2",
     "the best rated hotel", "that one you suggested", "the last one", "the nonstop flight"],
)  # fmt: skip
def test_phrases_that_point_back_are_references(phrase: str) -> None:
    assert parse_reference(phrase) is not None


@pytest.mark.parametrize(
    "phrase", ["the Park Hyatt", "day trip to Kyoto", "the", "a walking tour", "museum visit"]
)
def test_names_and_activities_are_not_references(phrase: str) -> None:
    assert parse_reference(phrase) is None


def test_a_flight_list_offers_its_flights_in_order_with_the_fares_shown() -> None:
    text = reply_to("flights from London to Tokyo on 2026-12-10")
    offers = offers_in(text, load_catalog())
    rows = load_catalog().flights_between("London", "Tokyo")
    assert [o.label for o in offers] == [str(f["flight"]) for f in rows]
    assert all(f"from ${o.price:.0f}" in text for o in offers)
    assert all(o.item["date"] == "2026-12-10" for o in offers)


def chosen(phrase: str, offers: list[Offer]) -> Offer | None:
    found = resolve(phrase, offers)
    assert found is not None, phrase
    return found.chosen


def test_ordinals_ranks_and_the_singled_out_offer() -> None:
    cat = load_catalog()
    hotels = offers_in(reply_to("hotels in Paris"), cat)
    by_price = sorted(hotels, key=lambda o: o.price or 0)
    assert chosen("the second one", hotels) == hotels[1]
    assert chosen("the last hotel", hotels) == hotels[-1]
    assert chosen("the cheaper hotel", hotels) == by_price[0]
    assert chosen("the most expensive one", hotels) == by_price[-1]
    assert chosen("option 9", hotels) is None  # out of range: ask, do not guess
    flights = offers_in(reply_to("flights from London to Tokyo on 2026-12-10"), cat)
    cheapest = min(flights, key=lambda o: o.price or 0)
    assert chosen("it", flights) == cheapest  # the reply's "best value", named twice
    assert chosen("that flight", flights) == cheapest


def test_an_ambiguous_or_empty_reference_picks_nothing() -> None:
    cat = load_catalog()
    hotels = offers_in(reply_to("hotels in Paris"), cat)
    ambiguous = resolve("that hotel", hotels)
    assert ambiguous is not None and ambiguous.chosen is None and ambiguous.candidates == hotels
    flights = offers_in(reply_to("flights from London to Tokyo on 2026-12-10"), cat)
    none = resolve("the first hotel", flights)
    assert none is not None and none.chosen is None and none.candidates == []


def test_an_itinerary_listing_offers_nothing() -> None:
    state = TripState(destination="Tokyo")
    state.itinerary.append({"kind": "hotel", "name": "Park Hyatt Tokyo", "city": "Tokyo"})
    state.recent_messages.append({"role": "user", "content": "show my itinerary"})
    text = compose(llm_messages("u1", state), load_catalog()).text
    assert "Park Hyatt Tokyo" in text and offers_in(text, load_catalog()) == []
