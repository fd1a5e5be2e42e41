from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from travelagent.topology.scenario import (
    LINK_NAMES,
    ScenarioError,
    list_presets,
    load_scenario,
    parse_scenario,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_preset_loads_and_resolves_fully() -> None:
    presets = list_presets()
    assert {"loopback", "same-region", "cross-region", "note", "ci"} <= set(presets)
    for name in presets:
        d = load_scenario(name).to_dict()
        assert d["name"] == name
        assert set(d["links"]) == set(LINK_NAMES)
        for link in d["links"].values():
            assert set(link) >= {"delay_ms", "jitter_ms", "jitter", "setup_rtts", "bandwidth_kbps"}
        assert set(d["worker"]) == {
            "publish",
            "stream",
            "webhook_mode",
            "agents",
            "max_connections_per_address",
        }
        assert set(d["llm"]) >= {"backend", "profile"}


def test_loopback_has_no_shaping_and_note_uses_the_note_profile() -> None:
    loop = load_scenario("loopback")
    assert all(lk.delay_ms == 0 and lk.setup_rtts == 0 for lk in loop.links.values())
    note = load_scenario("note")
    assert note.llm.profile == "note"
    assert note.links["client_worker"].delay_ms > note.links["realtime_worker"].delay_ms > 0


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, 'name = "tiny"\n'))
    d = s.to_dict()
    assert d["worker"] == {
        "publish": "http-pooled",
        "stream": True,
        "webhook_mode": "after-publish",
        "agents": "local",
        "max_connections_per_address": 0,  # the worker's own default
    }
    assert d["realtime"]["max_connections_per_address"] == 0
    assert d["links"]["worker_agents"]["setup_rtts"] == 1.0  # a TCP handshake by default
    assert d["ports"]["worker"] == 0 and d["faults"] == []
    assert d["external"] == {"worker_url": "", "realtime_url": "", "realtime_api_url": ""}


def test_faults_are_parsed_and_sorted_by_time(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            'name = "f"\n'
            '[[faults]]\nat_s = 10.0\nlink = "realtime_worker"\nfault = "reset"\nduration_s = 2.0\n'
            '[[faults]]\nat_s = 1\nlink = "client_worker"\nfault = "blackhole"\n',
        )
    )
    assert [(f["at_s"], f["link"], f["fault"]) for f in s.to_dict()["faults"]] == [
        (1.0, "client_worker", "blackhole"),
        (10.0, "realtime_worker", "reset"),
    ]
    assert s.to_dict()["faults"][1]["duration_s"] == 2.0


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ('name = "x"\nspeed = 3\n', "speed", "valid keys"),
        ('name = "x"\n[worker]\npublish = "carrier-pigeon"\n', "worker.publish", "http-new"),
        ('name = "x"\n[worker]\nwebhook_mode = "never"\n', "worker.webhook_mode", "ack-first"),
        ('name = "x"\n[worker]\nstream = "yes"\n', "worker.stream", "true or false"),
        (
            'name = "x"\n[links.client_worker]\ndelay_ms = -5\n',
            "links.client_worker.delay_ms",
            ">= 0",
        ),
        ('name = "x"\n[links.client_worker]\ndelay_ms = "ten"\n', "delay_ms", "must be a number"),
        ('name = "x"\n[links.moon]\ndelay_ms = 1\n', "links.moon", "client_worker"),
        (
            'name = "x"\n[links.client_worker]\nlatency = 1\n',
            "links.client_worker.latency",
            "delay_ms",
        ),
        ('name = "x"\n[links.client_worker]\njitter = "cauchy"\n', "jitter", "pareto"),
        ('name = "x"\n[[faults]]\nlink = "client_worker"\nfault = "reset"\n', "at_s", "required"),
        (
            'name = "x"\n[[faults]]\nat_s = 1\nlink = "client_worker"\nfault = "melt"\n',
            "fault",
            "blackhole",
        ),
        ('name = "x"\n[llm]\nbackend = "openai"\n', "llm.base_url", "required"),
        ('name = "x"\n[ports]\nworker = 70000\n', "ports.worker", "0-65535"),
        (
            'name = "x"\n[links.client_worker]\ndelay_ms = 3\ndirect = true\n',
            "direct",
            "zero delay",
        ),
        ('name = "x"\nseed = 1.5\n', "seed", "integer"),
        # TOML spells nan and inf; both were once accepted as a delay and a fault time
        ('name = "x"\n[links.client_worker]\ndelay_ms = nan\n', "delay_ms", "finite"),
        ('name = "x"\n[links.worker_agents]\nbandwidth_kbps = inf\n', "bandwidth_kbps", "finite"),
        (
            'name = "x"\n[[faults]]\nat_s = nan\nlink = "client_worker"\nfault = "reset"\n',
            "faults[0].at_s",
            "finite",
        ),
    ],
)
def test_bad_scenarios_name_the_file_the_key_and_the_valid_values(
    tmp_path: Path, text: Any, key: Any, hint: Any
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message and key in message and hint in message


def test_invalid_toml_is_a_scenario_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ScenarioError, match=r"presets: .*loopback"):
        load_scenario("no-such-preset")


def test_parse_from_a_dict_without_a_file() -> None:
    s = parse_scenario({"name": "inline", "worker": {"publish": "ws-persistent"}})
    assert s.worker.publish == "ws-persistent" and s.source == "<scenario>"


def test_resolved_dict_parses_back_to_the_same_scenario() -> None:
    for name in list_presets():
        s = load_scenario(name)
        assert parse_scenario(s.to_dict()) == s
