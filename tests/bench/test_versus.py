from __future__ import annotations

import os
from pathlib import Path

from travelagent.bench import versus


def test_a_commit_is_extracted_with_what_its_topologies_need(tmp_path: Path) -> None:
    tree = versus.extract("HEAD", tmp_path / "t")
    assert (tree / "travelagent" / "topology" / "launcher.py").is_file()
    assert (tree / "loadtests" / "scenarios" / "loopback.toml").is_file()
    assert any((tree / "data" / "catalog").iterdir())


def test_the_probes_read_this_process_and_this_disk(tmp_path: Path) -> None:
    busy = sum(i * i for i in range(200_000))  # some CPU time to see
    assert busy > 0 and versus.cpu_s(os.getpid()) > 0
    assert versus.fsync_commit_p50_ms(tmp_path, n=20) > 0
    assert list(tmp_path.iterdir()) == []  # the probe's database is gone
