from __future__ import annotations

from pathlib import Path
from typing import Any

from travelagent.topology.plan import active_links, build_plan, needed_ports
from travelagent.topology.scenario import load_scenario, parse_scenario


def plan_for(scenario: Any, tmp_path: Path) -> Any:
    ports = {name: 10_000 + i for i, name in enumerate(needed_ports(scenario))}
    return ports, build_plan(scenario, ports, tmp_path, tmp_path / "links.json")


def test_every_link_sits_between_the_right_components(tmp_path: Path) -> None:
    s = load_scenario("note")
    ports, plan = plan_for(s, tmp_path)
    links = {lk["name"]: lk for lk in plan.links_config["links"]}
    assert set(links) == {"client_worker", "client_realtime", "realtime_worker", "worker_realtime"}
    assert links["client_worker"]["upstream"].endswith(f":{ports['worker']}")
    assert links["realtime_worker"]["upstream"].endswith(f":{ports['worker']}")
    assert links["client_realtime"]["upstream"].endswith(f":{ports['realtime']}")
    assert links["worker_realtime"]["upstream"].endswith(f":{ports['realtime']}")
    assert links["client_worker"]["shape"]["delay_ms"] == 15.0
    argv = {p.name: p.argv for p in plan.processes}
    worker = argv["worker"]
    assert (
        worker[worker.index("--realtime-url") + 1] == f"http://127.0.0.1:{ports['worker_realtime']}"
    )
    realtime = argv["realtime"]
    assert realtime[realtime.index("--webhook-url") + 1] == (
        f"http://127.0.0.1:{ports['realtime_worker']}/api/realtime/webhook"
    )
    assert plan.urls["gateway"] == f"ws://127.0.0.1:{ports['client_worker']}/api/gateway/ws"
    assert plan.urls["realtime"] == (
        f"ws://127.0.0.1:{ports['client_realtime']}/connection/websocket"
    )
    assert plan.urls["realtime_api"] == f"http://127.0.0.1:{ports['client_realtime']}/api"


def test_remote_agents_get_their_own_process_and_link(tmp_path: Path) -> None:
    s = parse_scenario({"name": "r", "worker": {"agents": "remote"}})
    ports, plan = plan_for(s, tmp_path)
    assert [p.name for p in plan.processes] == ["links", "realtime", "agents", "worker"]
    worker = next(p.argv for p in plan.processes if p.name == "worker")
    assert worker[worker.index("--agents-url") + 1] == f"http://127.0.0.1:{ports['worker_agents']}"


def test_direct_link_is_skipped_only_when_the_scenario_says_so(tmp_path: Path) -> None:
    s = parse_scenario(
        {
            "name": "d",
            "links": {"worker_realtime": {"delay_ms": 0, "setup_rtts": 0, "direct": True}},
        }
    )
    assert "worker_realtime" not in active_links(s)
    ports, plan = plan_for(s, tmp_path)
    worker = next(p.argv for p in plan.processes if p.name == "worker")
    assert worker[worker.index("--realtime-url") + 1] == f"http://127.0.0.1:{ports['realtime']}"
    zero = load_scenario("loopback")  # zero delay alone does not remove a link
    assert "worker_realtime" in active_links(zero)


def test_external_worker_is_not_started_and_its_url_is_used(tmp_path: Path) -> None:
    s = parse_scenario(
        {"name": "e", "external": {"worker_url": "wss://agent.example/api/gateway/ws"}}
    )
    _, plan = plan_for(s, tmp_path)
    assert "worker" not in [p.name for p in plan.processes]
    assert plan.urls["gateway"] == "wss://agent.example/api/gateway/ws"
    assert {lk["name"] for lk in plan.links_config["links"]} == {"client_realtime"}


def test_fault_schedule_goes_to_the_links_process(tmp_path: Path) -> None:
    s = parse_scenario(
        {"name": "f", "faults": [{"at_s": 10, "link": "worker_realtime", "fault": "reset"}]}
    )
    _, plan = plan_for(s, tmp_path)
    assert plan.links_config["faults"] == [
        {"at_s": 10.0, "link": "worker_realtime", "fault": "reset"}
    ]


def test_openai_backend_flags_reach_worker_and_agent_host(tmp_path: Path) -> None:
    s = parse_scenario(
        {
            "name": "o",
            "llm": {"backend": "openai", "base_url": "http://127.0.0.1:11434/v1", "model": "m"},
            "worker": {"agents": "remote"},
        }
    )
    _, plan = plan_for(s, tmp_path)
    for name in ("worker", "agents"):
        argv = next(p.argv for p in plan.processes if p.name == name)
        assert argv[argv.index("--llm") + 1] == "openai"
        assert argv[argv.index("--llm-base-url") + 1] == "http://127.0.0.1:11434/v1"
        assert argv[argv.index("--llm-model") + 1] == "m"
