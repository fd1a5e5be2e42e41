from __future__ import annotations

import pytest

from travelagent.agent.catalog import load_catalog
from travelagent.agent.llm.answers import compose
from travelagent.agent.state import TripState, apply_user_message, llm_messages


def ask(text: str, state: TripState | None = None) -> tuple[str, str, bool]:
    """Apply the message to the state as the agent does, then ask the simulated model."""
    state = state or TripState()
    cat = load_catalog()
    apply_user_message(state, text, cat)
    state.recent_messages.append({"role": "user", "content": text})
    answer = compose(llm_messages("u1", state), cat)
    return answer.text, answer.intent, answer.tool_call


def test_flight_search_between_two_cities_on_a_date_lists_catalog_flights() -> None:
    text, intent, tool = ask("flights from London to Tokyo on 2026-12-10")
    assert intent == "flights" and tool
    assert "London (LHR) to Tokyo (HND) on 2026-12-10" in text
    for f in load_catalog().flights_between("London", "Tokyo"):
        assert f["flight"] in text


def test_fares_depend_on_the_date_but_are_stable() -> None:
    a = ask("flights from London to Tokyo on 2026-12-10")[0]
    assert a == ask("flights from London to Tokyo on 2026-12-10")[0]
    assert a != ask("flights from London to Tokyo on 2027-01-15")[0]


def test_flight_search_with_an_unknown_city_says_so() -> None:
    text, intent, _ = ask("flights from London to Atlantis")
    assert intent == "flights" and "could not place" in text


def test_hotel_search_in_a_city() -> None:
    text, intent, tool = ask("hotels in Lisbon")
    assert intent == "hotels" and tool
    for h in load_catalog().hotels_in("Lisbon"):
        assert h["name"] in text


def test_hotel_search_without_a_city_uses_the_trip_destination_or_asks() -> None:
    assert "Which city" in ask("find me a hotel")[0]
    state = TripState(destination="Rome")
    assert "Hotels in Rome" in ask("find me a hotel", state)[0]


def test_adding_a_hotel_and_a_day_trip_to_the_itinerary() -> None:
    state = TripState(destination="Tokyo")
    text, intent, _ = ask("add the Park Hyatt to my itinerary", state)
    assert intent == "add" and "Added Park Hyatt Tokyo" in text
    text, _, _ = ask("add day trip to Kyoto", state)
    assert "Added Kyoto" in text and "2 item(s)" in text
    assert state.itinerary == [
        {"kind": "hotel", "name": "Park Hyatt Tokyo", "city": "Tokyo"},
        {"kind": "day_trip", "name": "Kyoto"},
    ]
    assert state.destination == "Tokyo"  # a day trip does not move the trip


def test_showing_the_itinerary() -> None:
    state = TripState(destination="Tokyo")
    assert "empty" in ask("show my itinerary", state)[0]
    ask("add day trip to Nikko", state)
    text, intent, _ = ask("show my itinerary", state)
    assert intent == "show" and "1. Nikko" in text


def test_when_to_visit_a_city_gives_its_best_months() -> None:
    text, intent, _ = ask("When should I visit Lisbon?")
    assert intent == "when" and "March" in text and "Sintra" in text


def test_budget_tips() -> None:
    text, intent, _ = ask("any budget tips?")
    assert intent == "budget" and "midweek" in text


def test_trip_basics_and_preferences_are_taken_from_the_message() -> None:
    state = TripState()
    text, intent, _ = ask(
        "I want a trip to Tokyo from 2026-12-10 to 2026-12-20 with a budget of $3,000; "
        "I love museums and food",
        state,
    )
    assert intent == "trip"
    assert state.basics() == {
        "destination": "Tokyo",
        "startDate": "2026-12-10",
        "endDate": "2026-12-20",
        "budget": 3000.0,
    }
    assert state.preferences == ["museums", "food"]
    assert "Tokyo" in text and "museums" in text


@pytest.mark.parametrize("text", ["hello", "what is the meaning of life", "¿qué tal?"])
def test_anything_else_gets_a_helpful_fallback(text: str) -> None:
    answer, intent, _ = ask(text)
    assert intent == "fallback" and "flights from London to Tokyo" in answer


def test_a_weather_question_about_another_city_answers_for_it_and_keeps_the_trip() -> None:
    state = TripState(destination="Rome")
    text, intent, _ = ask("what's the weather like in Lisbon in March?", state)
    assert intent == "weather" and state.destination == "Rome"
    assert text.startswith("March in Lisbon is early spring, and one of its best months")
    assert load_catalog().city_tips["Lisbon"][0] in text and "Sintra" in text
    assert "Your trip is still to Rome" in text


def test_seasons_follow_the_hemisphere_and_skip_the_tropics() -> None:
    assert "July in Sydney is mid winter" in ask("what is Sydney like in July?")[0]
    assert "July in London is mid summer" in ask("how warm is London in July?")[0]
    text = ask("is Singapore hot in August?")[0]
    assert text.startswith("August in Singapore is one of its best months")


def test_budget_tips_for_a_named_city_use_that_citys_tips() -> None:
    text, intent, _ = ask("budget tips for Lisbon?", TripState(destination="Rome"))
    assert intent == "budget" and load_catalog().city_tips["Lisbon"][0] in text
