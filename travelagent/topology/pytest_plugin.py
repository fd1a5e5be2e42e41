"""A pytest factory fixture that starts topologies and always stops them.

    from travelagent.topology.pytest_plugin import topology_factory  # noqa: F401

    def test_something(topology_factory):
        topo = topology_factory("loopback")
        ... topo.urls["gateway"] ...

or list ``"travelagent.topology.pytest_plugin"`` in a conftest's ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from travelagent.topology.launcher import Topology
from travelagent.topology.scenario import Scenario

TopologyFactory = Callable[..., Topology]


@pytest.fixture
def topology_factory(tmp_path: Path) -> Iterator[TopologyFactory]:
    started: list[Topology] = []

    def make(scenario: Scenario | str | Path, **kwargs: Any) -> Topology:
        kwargs.setdefault("run_dir", tmp_path / f"topology-{len(started)}")
        topo = Topology(scenario, **kwargs)
        started.append(topo)  # before start: a failed start still gets stopped
        return topo.start()

    yield make
    for topo in reversed(started):
        topo.stop()
