"""The links process raises its own scheduling priority, and says so when it may not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from travelagent.link import runtime

CHILD = (
    "import sys; from travelagent.link.runtime import raise_priority; "
    "print(raise_priority(None if sys.argv[1] == 'env' else int(sys.argv[1])))"
)


def _child(arg: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                          env=full, timeout=30, check=False)  # fmt: skip


def test_a_lower_priority_is_always_granted() -> None:
    res = _child("7")
    assert res.returncode == 0 and res.stdout.strip() == "7", res.stderr


def test_the_environment_sets_the_default_and_a_bad_value_is_reported() -> None:
    assert _child("env", {"TRAVELAGENT_LINK_NICE": "5"}).stdout.strip() == "5"
    zero = _child("env", {"TRAVELAGENT_LINK_NICE": "0"})
    assert zero.stdout.strip() == str(os.getpriority(os.PRIO_PROCESS, 0))  # left as it was
    bad = _child("env", {"TRAVELAGENT_LINK_NICE": "fast"})
    assert bad.returncode == 0 and "must be an integer" in bad.stderr


def test_without_the_privilege_the_links_keep_their_priority_and_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(runtime.os, "setpriority", refuse)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert runtime.raise_priority(-10) == before
    assert "cannot set nice -10" in capsys.readouterr().err


def test_an_out_of_range_value_is_a_config_error(tmp_path: Path) -> None:
    for bad in (40, "fast", True, 1.5):
        with pytest.raises(ValueError, match="between -20 and 19"):
            runtime.raise_priority(bad)  # type: ignore[arg-type]
    cfg = tmp_path / "links.json"
    cfg.write_text(json.dumps({"links": [], "nice": 40}))
    res = subprocess.run([sys.executable, "-m", "travelagent.link", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert res.returncode == 2 and "nice must be an integer between -20 and 19" in res.stderr
