"""A pytest factory fixture that starts topologies and always stops them.

Installed with the package as a ``pytest11`` entry point, so any test in an environment with
travelagent installed can ask for it by name:

    def test_something(topology_factory):
        topo = topology_factory("loopback")
        ... topo.urls["gateway"] ...

The plugin loads in every pytest session of that environment, so it imports nothing heavy until
the fixture is used. The entry point is named after this module: a conftest that still lists
``"travelagent.topology.pytest_plugin"`` in ``pytest_plugins`` finds it registered and does not
register it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from travelagent.topology.launcher import Topology
    from travelagent.topology.scenario import Scenario

TopologyFactory = Callable[..., "Topology"]


@pytest.fixture
def topology_factory(tmp_path: Path) -> Iterator[TopologyFactory]:
    from travelagent.topology.launcher import Topology

    started: list[Topology] = []

    def make(scenario: Scenario | str | Path, **kwargs: Any) -> Topology:
        kwargs.setdefault("run_dir", tmp_path / f"topology-{len(started)}")
        topo = Topology(scenario, **kwargs)
        started.append(topo)  # before start: a failed start still gets stopped
        return topo.start()

    yield make
    for topo in reversed(started):
        topo.stop()
