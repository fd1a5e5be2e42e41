"""``travelagent probe`` against a topology it starts: a run on disk that pandas loads, with
every stamp of the path present and in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from travelagent.cli import main
from travelagent.wire.trace import GATEWAY_PATH, REALTIME_PATH


@pytest.mark.parametrize(("arch", "path"), [("gateway", GATEWAY_PATH), ("realtime", REALTIME_PATH)])
def test_probe_writes_a_run_with_every_stamp_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arch: Any, path: Any
) -> None:
    argv = ["probe", "--scenario", "loopback", "--profile", "instant", "--arch", arch,
            "--messages", "12", "--clients", "3", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    [run_dir] = [p for p in tmp_path.iterdir() if p.name.endswith(tuple("0123456789"))]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["kind"] == "probe"
    assert meta["cells"][0]["scenario"]["name"] == "loopback"
    msgs = pd.read_parquet(run_dir / "messages.parquet")
    stamps = pd.read_parquet(run_dir / "stamps.parquet")
    assert len(msgs) == 12 and set(msgs["status"]) == {"ok"} and msgs["msg_id"].is_unique
    assert set(msgs["arch"]) == {arch}
    for msg_id, st in stamps.groupby("msg_id"):
        st = st.sort_values("seq")
        assert list(st["name"]) == list(path), msg_id
        ordered = st[st["name"] != "client.first"]["t_ns"]
        assert ordered.is_monotonic_increasing
    assert "end to end (recv - send)" in out and "p99 ms" in out


def test_probe_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--messages", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["probe", "--all-paths"]) == 2
    assert "needs --scenario" in capsys.readouterr().err


def test_probe_against_nothing_listening_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import free_port

    rc = main(["probe", "--url", f"ws://127.0.0.1:{free_port()}", "--messages", "1",
               "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 1
    assert "travelagent probe:" in capsys.readouterr().err
