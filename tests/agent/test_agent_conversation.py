"""A scripted conversation with the TravelAgent actor: references to what it just offered,
and questions about another city than the trip's."""

from __future__ import annotations

from pathlib import Path

from travelagent.agent.catalog import load_catalog
from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm.simulated import SimulatedLLM


def _flights() -> list[dict[str, object]]:
    return load_catalog().flights_between("London", "Rome")


async def test_the_agent_adds_what_it_just_offered_and_answers_about_other_cities(
    tmp_path: Path,
) -> None:
    d = LocalAgentDirectory(tmp_path / "agents.db", llm=SimulatedLLM(profile="instant"))
    agent = d.get("u1")
    try:
        reply = await agent.handle_message("I want a trip to Rome from 2027-03-10 to 2027-03-17")
        assert "destination Rome" in reply

        flights = await agent.handle_message("flights from London to Rome on 2027-03-10")
        listed = [f["flight"] for f in _flights()]
        assert len(listed) >= 2 and all(str(code) in flights for code in listed)

        reply = await agent.handle_message("add the first one to my itinerary")
        state = await agent.state()
        first = state.itinerary[0]
        assert first["kind"] == "flight" and first["flight"] == listed[0]
        assert first["date"] == "2027-03-10" and (first["from"], first["to"]) == ("London", "Rome")
        assert reply.startswith(f"Added {first['name']}")
        assert "the first one" not in str(state.itinerary)

        # "that flight": the one the reply singled out as the best value
        best = flights.split("The best value is ")[1].split(".")[0]
        await agent.handle_message("add that flight")
        assert [i.get("flight") for i in (await agent.state()).itinerary] == [listed[0], best]

        # asking for the same one again does not add it twice
        again = await agent.handle_message(
            f"add the {'first' if best == listed[0] else 'second'} one"
        )
        assert "already in your itinerary" in again
        assert len((await agent.state()).itinerary) == 2

        hotels = load_catalog().hotels_in("Rome")
        await agent.handle_message("hotels in Rome")
        reply = await agent.handle_message("add the cheaper hotel to my itinerary")
        assert reply.startswith(f"Added {hotels[0]['name']}")
        which = await agent.handle_message("add that hotel")
        assert which.startswith("Which one do you mean?") and hotels[1]["name"] in which
        assert len((await agent.state()).itinerary) == 3  # nothing guessed

        weather = await agent.handle_message("what's the weather like in Lisbon in March?")
        assert "Lisbon" in weather and "March" in weather and "spring" in weather
        assert "best months" in weather and "Sintra" in weather
        assert load_catalog().city_tips["Lisbon"][0] in weather
        assert "Noted" not in weather and "Your trip is still to Rome" in weather
        tips = await agent.handle_message("any tips for Tokyo?")
        assert load_catalog().city_tips["Tokyo"][0] in tips

        state = await agent.state()
        assert state.destination == "Rome"  # questions about Lisbon and Tokyo left the trip alone
        assert [i["kind"] for i in state.itinerary] == ["flight", "flight", "hotel"]
    finally:
        await d.close()


async def test_a_reference_resolves_against_the_stored_conversation_after_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "agents.db"
    d = LocalAgentDirectory(db, llm=SimulatedLLM(profile="instant"))
    await d.get("u1").handle_message("hotels in Lisbon")
    await d.close()

    again = LocalAgentDirectory(db, llm=SimulatedLLM(profile="instant"))
    try:
        reply = await again.get("u1").handle_message("add the second one")
        second = load_catalog().hotels_in("Lisbon")[1]["name"]
        assert reply.startswith(f"Added {second}")
        assert (await again.get("u1").state()).itinerary == [
            {"kind": "hotel", "name": second, "city": "Lisbon"}
        ]
    finally:
        await again.close()


async def test_a_reference_with_nothing_offered_adds_nothing_and_says_so(tmp_path: Path) -> None:
    d = LocalAgentDirectory(tmp_path / "agents.db", llm=SimulatedLLM(profile="instant"))
    try:
        reply = await d.get("u1").handle_message("add the first one to my itinerary")
        assert "not suggested any flights or hotels" in reply
        assert (await d.get("u1").state()).itinerary == []
    finally:
        await d.close()
