"""The systems under test, started by the project's own ``Topology`` launcher.

The bench scenario is the ``loopback`` preset with the ``instant`` LLM profile and every link
marked ``direct`` (no proxy at all), so a round trip measures the worker, the realtime service
and the agent, not the links (those have their own section). The worker's publish mode and
streaming default are settings of its process, so each realtime configuration gets its own
topology; all of them stay up, idle, for the whole run, which lets trials of different
configurations alternate without restarts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from travelagent.config import JWT_SECRET_ENV
from travelagent.topology.launcher import Topology
from travelagent.topology.scenario import LINK_NAMES, LinkConfig, Scenario, load_scenario
from travelagent.vocab import PublishMode


def bench_scenario(
    name: str, *, publish: PublishMode = "ws-persistent", stream: bool = False
) -> Scenario:
    """``loopback`` with ``instant`` replies and no link proxies."""
    base = load_scenario("loopback")
    return dataclasses.replace(
        base,
        name=name,
        description="bench: loopback, instant LLM, direct links",
        llm=dataclasses.replace(base.llm, profile="instant"),
        worker=dataclasses.replace(base.worker, publish=publish, stream=stream),
        links={n: LinkConfig(setup_rtts=0.0, direct=True) for n in LINK_NAMES},
    )


def realtime_case(publish: str, stream: bool) -> str:
    return f"realtime-{publish}-{'stream' if stream else 'nostream'}"


def topology(scenario: Scenario, run_dir: Path) -> Topology:
    return Topology(scenario, run_dir=run_dir / "topologies" / scenario.name)


def jwt_secret(topo: Topology) -> str:
    return topo.secrets[JWT_SECRET_ENV]
