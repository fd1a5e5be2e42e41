"""run.json: what a run is, enough to reproduce it (config, seed, versions, host, commit)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "travelagent",
    "websockets",
    "aiohttp",
    "httpx",
    "pandas",
    "pyarrow",
    "numpy",
    "matplotlib",
    "locust",
    "papermill",
)


def new_run_id(prefix: str = "") -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{prefix}{os.getpid() % 10000:04d}" if prefix else f"{stamp}-{os.getpid()}"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=cwd or Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def write_run_json(run_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write (or update, merging keys) run_dir/run.json atomically."""
    path = Path(run_dir) / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    if path.exists():
        current = json.loads(path.read_text())
    current.update(info)
    current.setdefault("run_id", Path(run_dir).name)
    current.setdefault("versions", package_versions())
    current.setdefault("host", host_info())
    current.setdefault("git_commit", git_commit())
    current.setdefault("command", sys.argv)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path
