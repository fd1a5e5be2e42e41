"""From a scenario and a set of ports to command lines, link table and URLs; pure, no I/O.

Wiring (design section 2): clients -> client_worker -> worker; clients -> client_realtime ->
realtime; realtime's webhook -> realtime_worker -> worker; worker's realtime URL (HTTP API and
publisher socket) -> worker_realtime -> realtime; worker's agents URL -> worker_agents -> agent
host (only with ``agents = "remote"``). Every link exists unless the scenario marks it
``direct`` (then the two ends connect with no proxy at all).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from travelagent.topology.scenario import Scenario

HOST = "127.0.0.1"

# link name -> the component it leads to
LINK_TARGETS: dict[str, str] = {
    "client_worker": "worker",
    "client_realtime": "realtime",
    "realtime_worker": "worker",
    "worker_realtime": "realtime",
    "worker_agents": "agents",
}


@dataclass(frozen=True)
class ComponentContext:
    """What a command builder needs to start one component."""

    name: str
    host: str
    port: int
    run_dir: Path
    scenario: Scenario
    realtime_url: str = ""  # worker: base URL of the realtime service, through its link
    webhook_url: str = ""  # realtime: where webhooks go, through the realtime_worker link
    agents_url: str = ""  # worker: the agent host, through the worker_agents link
    links_config: Path | None = None  # links: the JSON file to serve


CommandBuilder = Callable[[ComponentContext], list[str]]


def worker_command(ctx: ComponentContext) -> list[str]:
    s = ctx.scenario
    argv = [
        sys.executable, "-m", "travelagent", "serve", "worker",
        "--host", ctx.host, "--port", str(ctx.port),
        "--db", str(ctx.run_dir / "worker.sqlite3"),
        "--llm", s.llm.backend, "--profile", s.llm.profile, "--seed", str(s.seed),
        "--realtime-url", ctx.realtime_url,
        "--publish", s.worker.publish,
        "--stream" if s.worker.stream else "--no-stream",
        "--webhook-mode", s.worker.webhook_mode,
    ]  # fmt: skip
    if s.llm.backend == "openai":
        argv += ["--llm-base-url", s.llm.base_url]
        if s.llm.model:
            argv += ["--llm-model", s.llm.model]
    if ctx.agents_url:
        argv += ["--agents-url", ctx.agents_url]
    if s.worker.max_connections_per_address:
        argv += ["--max-connections-per-address", str(s.worker.max_connections_per_address)]
    return argv


def realtime_command(ctx: ComponentContext) -> list[str]:
    rt = ctx.scenario.realtime
    argv = [
        sys.executable, "-m", "travelagent", "serve", "realtime",
        "--host", ctx.host, "--port", str(ctx.port),
        "--webhook-url", ctx.webhook_url, "--history", rt.history,
    ]  # fmt: skip
    if rt.history == "sqlite":
        argv += ["--db", str(ctx.run_dir / "realtime-history.sqlite3")]
    if rt.webhook_outbox:
        argv += ["--webhook-outbox", str(ctx.run_dir / "realtime-outbox.sqlite3")]
    if rt.webhook_retry_schedule_s:
        argv += [
            "--webhook-retry-schedule-s",
            ",".join(f"{d:g}" for d in rt.webhook_retry_schedule_s),
        ]
    if rt.max_connections_per_address:
        argv += ["--max-connections-per-address", str(rt.max_connections_per_address)]
    return argv


def agents_command(ctx: ComponentContext) -> list[str]:
    s = ctx.scenario
    argv = [
        sys.executable, "-m", "travelagent", "serve", "agents",
        "--host", ctx.host, "--port", str(ctx.port),
        "--db", str(ctx.run_dir / "agents.sqlite3"),
        "--llm", s.llm.backend, "--profile", s.llm.profile, "--seed", str(s.seed),
    ]  # fmt: skip
    if s.llm.backend == "openai":
        argv += ["--llm-base-url", s.llm.base_url]
        if s.llm.model:
            argv += ["--llm-model", s.llm.model]
    return argv


def links_command(ctx: ComponentContext) -> list[str]:
    return [sys.executable, "-m", "travelagent.link", "--config", str(ctx.links_config)]


DEFAULT_COMMANDS: dict[str, CommandBuilder] = {
    "links": links_command,
    "realtime": realtime_command,
    "agents": agents_command,
    "worker": worker_command,
}


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str


@dataclass
class Plan:
    processes: list[ProcessSpec] = field(default_factory=list)
    links_config: dict[str, Any] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


def components(scenario: Scenario) -> list[str]:
    """Components this scenario starts locally, in start order."""
    out = []
    if "realtime_url" not in scenario.external:
        out.append("realtime")
    if scenario.worker.agents == "remote":
        out.append("agents")
    if "worker_url" not in scenario.external:
        out.append("worker")
    return out


def active_links(scenario: Scenario) -> list[str]:
    """Links that exist as proxies: both ends local and not marked direct."""
    local = set(components(scenario))
    out = []
    for name, target in LINK_TARGETS.items():
        source = name.split("_", 1)[0]
        if target not in local or (source != "client" and source not in local):
            continue
        if not scenario.links[name].direct:
            out.append(name)
    return out


def needed_ports(scenario: Scenario) -> list[str]:
    return [*components(scenario), *active_links(scenario), "control"]


def build_plan(
    scenario: Scenario,
    ports: Mapping[str, int],
    run_dir: Path,
    links_config_path: Path,
    commands: Mapping[str, CommandBuilder] | None = None,
    *,
    host: str = HOST,
) -> Plan:
    cmds = {**DEFAULT_COMMANDS, **(commands or {})}
    local = components(scenario)
    links = active_links(scenario)

    def via(link: str) -> str:
        """host:port to reach the link's target: through the link, or direct."""
        port = ports[link] if link in links else ports[LINK_TARGETS[link]]
        return f"{host}:{port}"

    plan = Plan(ports=dict(ports))
    plan.links_config = {
        "control": f"{host}:{ports['control']}",
        "timer": "timerfd",  # falls back to a timer thread where timerfd is missing
        "links": [
            {
                "name": name,
                "listen": f"{host}:{ports[name]}",
                "upstream": f"{host}:{ports[LINK_TARGETS[name]]}",
                "shape": scenario.links[name].shape(),
                "seed": scenario.seed * 100 + i,  # each link its own jitter stream
                "record": scenario.links[name].record,
            }
            for i, name in enumerate(links)
        ],
        "faults": [f for f in scenario.fault_schedule() if f["link"] in links],
    }

    ext = scenario.external
    realtime_base = ext.get("realtime_api_url", "") if "realtime" not in local else ""
    if "realtime" in local:
        realtime_base = f"http://{via('worker_realtime')}"
    contexts = {
        "links": ComponentContext(
            "links", host, ports["control"], run_dir, scenario, links_config=links_config_path
        ),
        "realtime": ComponentContext(
            "realtime", host, ports.get("realtime", 0), run_dir, scenario,
            webhook_url=(
                f"http://{via('realtime_worker')}/api/realtime/webhook"
                if "worker" in local else ""
            ),
        ),
        "agents": ComponentContext("agents", host, ports.get("agents", 0), run_dir, scenario),
        "worker": ComponentContext(
            "worker", host, ports.get("worker", 0), run_dir, scenario,
            realtime_url=realtime_base,
            agents_url=f"http://{via('worker_agents')}" if "agents" in local else "",
        ),
    }  # fmt: skip
    plan.processes.append(
        ProcessSpec(
            "links", cmds["links"](contexts["links"]), f"http://{host}:{ports['control']}/healthz"
        )
    )
    for name in local:
        plan.processes.append(
            ProcessSpec(name, cmds[name](contexts[name]), f"http://{host}:{ports[name]}/healthz")
        )

    urls = plan.urls
    urls["control"] = f"http://{host}:{ports['control']}"
    if "worker" in local:
        urls["gateway"] = f"ws://{via('client_worker')}/api/gateway/ws"
        urls["worker"] = f"http://{via('client_worker')}"
        urls["worker_direct"] = f"http://{host}:{ports['worker']}"
    else:
        urls["gateway"] = ext["worker_url"]
    if "realtime" in local:
        urls["realtime"] = f"ws://{via('client_realtime')}/connection/websocket"
        urls["realtime_api"] = f"http://{via('client_realtime')}/api"
        urls["realtime_direct"] = f"http://{host}:{ports['realtime']}"
    else:
        urls["realtime"] = ext["realtime_url"]
        urls["realtime_api"] = ext.get("realtime_api_url", "")
    if "agents" in local:
        urls["agents_direct"] = f"http://{host}:{ports['agents']}"
    return plan
