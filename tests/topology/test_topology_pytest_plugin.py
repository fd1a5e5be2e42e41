"""The topology fixture is a pytest plugin registered by the package (``pytest11``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def test_the_fixture_is_there_without_an_import(topology_factory: Any) -> None:
    assert callable(topology_factory)  # nothing started: the factory only starts when called


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, travelagent.topology.pytest_plugin\n"
        "heavy = {'httpx', 'aiohttp', 'pandas', 'locust'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_conftest_that_also_lists_the_plugin_does_not_register_it_twice(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["travelagent.topology.pytest_plugin"]\n'
    )
    (tmp_path / "test_uses_it.py").write_text(
        "def test_it(topology_factory):\n    assert callable(topology_factory)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
