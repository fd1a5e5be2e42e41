"""Properties of scenario files: any TOML-shaped table parses or names the key; round trips."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import TOML_VALUES

from travelagent.link.faults import FAULT_NAMES
from travelagent.topology.scenario import (
    EXTERNAL_KEYS,
    LINK_NAMES,
    PORT_KEYS,
    Scenario,
    ScenarioError,
    parse_scenario,
)
from travelagent.vocab import JITTER_KINDS, PUBLISH_MODES, WEBHOOK_MODES

MS = st.floats(min_value=0, max_value=1e6)
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


def links() -> st.SearchStrategy[dict[str, Any]]:
    link = st.fixed_dictionaries(
        {},
        optional={
            "delay_ms": MS,
            "jitter_ms": MS,
            "jitter": st.sampled_from(JITTER_KINDS),
            "setup_rtts": st.floats(min_value=0, max_value=5),
            "bandwidth_kbps": MS,
            "record": st.booleans(),
        },
    )
    return st.fixed_dictionaries({}, optional={n: link for n in LINK_NAMES})


def valid_scenarios() -> st.SearchStrategy[dict[str, Any]]:
    fault = st.fixed_dictionaries(
        {
            "at_s": st.floats(min_value=0, max_value=600),
            "link": st.sampled_from(LINK_NAMES),
            "fault": st.sampled_from(FAULT_NAMES),
        },
        optional={"duration_s": st.floats(min_value=0, max_value=60)},
    )
    return st.fixed_dictionaries(
        {"name": NAMES},
        optional={
            "description": st.text(max_size=30),
            "seed": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "worker": st.fixed_dictionaries(
                {},
                optional={
                    "publish": st.sampled_from(PUBLISH_MODES),
                    "stream": st.booleans(),
                    "webhook_mode": st.sampled_from(WEBHOOK_MODES),
                    "agents": st.sampled_from(["local", "remote"]),
                },
            ),
            "links": links(),
            "faults": st.lists(fault, max_size=3),
            "external": st.fixed_dictionaries(
                {}, optional={k: st.text(min_size=1, max_size=20) for k in EXTERNAL_KEYS}
            ),
            "ports": st.fixed_dictionaries(
                {}, optional={k: st.integers(min_value=1, max_value=65535) for k in PORT_KEYS}
            ),
        },
    )


def paths(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every key path in ``data`` (tables and arrays of tables), and one new key per table."""
    out: list[tuple[str, ...]] = [("colour",)]
    for key, value in data.items():
        out.append((key,))
        if isinstance(value, dict):
            out.append((key, "colour"))
            for sub, inner in value.items():
                out.append((key, sub))
                if isinstance(inner, dict):
                    out.extend((key, sub, k) for k in [*inner, "colour"])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    out.extend((key, str(i), k) for k in item)
    return out


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if len(path) == 1:
        return {**data, path[0]: value}
    head = data[path[0]]
    if isinstance(head, list):
        i = int(path[1])
        item = set_path(head[i], path[2:], value)
        return {**data, path[0]: [*head[:i], item, *head[i + 1 :]]}
    return {**data, path[0]: set_path(head, path[1:], value)}


@given(valid_scenarios())
def test_a_valid_scenario_parses_and_its_resolved_dict_parses_back_to_it(
    data: dict[str, Any],
) -> None:
    scenario = parse_scenario(data)
    assert isinstance(scenario, Scenario)
    assert parse_scenario(scenario.to_dict()) == scenario


@given(valid_scenarios(), st.data())
def test_one_changed_value_parses_or_is_refused_naming_its_section(
    data: dict[str, Any], draw: Any
) -> None:
    path = draw.draw(st.sampled_from(paths(data)))
    changed = set_path(data, path, draw.draw(TOML_VALUES))
    try:
        parse_scenario(changed, source="s.toml")
    except ScenarioError as err:
        message = str(err)
        assert message.startswith("s.toml: ") and path[0] in message, (path, message)


@given(st.dictionaries(st.text(max_size=10), TOML_VALUES, max_size=6))
def test_any_table_parses_or_is_a_scenario_error(data: dict[str, Any]) -> None:
    try:
        parse_scenario(data)
    except ScenarioError as err:
        assert str(err)
