"""Packaging: environment.yml matches pyproject.toml, test-only packages stay out of the
runtime dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI ones
CONDA_NAMES = {"matplotlib": "matplotlib-base"}
_REQ = re.compile(r"([A-Za-z0-9_.\-]+)\s*(.*)")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(reqs: list[str]) -> dict[str, str]:
    out = {}
    for req in reqs:
        m = _REQ.fullmatch(req.strip())
        assert m, req
        out[CONDA_NAMES.get(m.group(1).lower(), m.group(1).lower())] = m.group(2).replace(" ", "")
    return out


def _environment() -> tuple[dict[str, str], list[str]]:
    """Conda dependencies (name -> version spec) and the pip list of environment.yml."""
    conda: dict[str, str] = {}
    pip: list[str] = []
    section = ""
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.split(":", 1)[0]
            continue
        item = line.strip()
        if section != "dependencies" or not item.startswith("- "):
            continue
        if raw.startswith("      - "):
            pip.append(item[2:])
        elif item != "- pip:":
            m = _REQ.fullmatch(item[2:])
            assert m, item
            conda[m.group(1)] = m.group(2).replace(" ", "")
    return conda, pip


def test_environment_yml_has_every_dependency_from_conda_forge_with_the_same_bounds() -> None:
    project = _pyproject()["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda, pip = _environment()
    tools = {"python", "pip", "make"}
    assert {k: v for k, v in conda.items() if k not in tools} == wanted
    assert conda["python"] == project["requires-python"]
    assert pip == ["-e ."]  # only the package itself from pip


def test_packages_only_the_tests_import_are_dev_extras() -> None:
    runtime = _requirements(_pyproject()["project"]["dependencies"])
    dev = _requirements(_pyproject()["project"]["optional-dependencies"]["dev"])
    for name, module in [("standardwebhooks", "standardwebhooks"),
                         ("opentelemetry-proto", "opentelemetry"),
                         ("centrifuge-python", "centrifuge")]:  # fmt: skip
        assert name in dev and name not in runtime
        used = subprocess.run(
            ["grep", "-rlE", rf"^\s*(import|from) {module}\b", str(ROOT / "travelagent")],
            capture_output=True,
            text=True,
        )
        assert used.stdout == "", f"travelagent imports {module}: make it a runtime dependency"


def test_the_topology_fixture_is_a_pytest11_entry_point() -> None:
    eps = _pyproject()["project"]["entry-points"]["pytest11"]
    assert eps == {"travelagent.topology.pytest_plugin": "travelagent.topology.pytest_plugin"}
    from importlib.metadata import entry_points

    installed = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert (
        installed.get("travelagent.topology.pytest_plugin")
        == eps["travelagent.topology.pytest_plugin"]
    ), f"reinstall the package ({sys.executable} -m pip install -e .)"
