"""The load-generator section: what one Locust process can drive, beside a bare asyncio client.

Targets: the stand-in gateway (``loadtests/standin.py``, no agent, replies at once) and the real
gateway. Locust runs as the project runs it (``loadtests/locustfile.py``, ``GatewayUser``, closed
loop, records to Parquet) in one process; its rate is taken over the whole seconds of its run
(the first and last, partial, are dropped). The bare client is ``AsyncGatewayClient`` with the
same number of users, through the round-trip driver.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from travelagent.bench import clients
from travelagent.bench.trial import closed_loop
from travelagent.topology.launcher import ROOT

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
STANDIN = ROOT / "loadtests" / "standin.py"


def locust_rate(stats: list[dict[str, Any]], name: str = "gateway") -> tuple[float, int]:
    """Messages per second of Locust's ``--json`` entry ``name``, over its whole seconds."""
    entry = next(e for e in stats if e["name"] == name and e["method"] == "WS")
    per_s = sorted((int(k), v) for k, v in entry["num_reqs_per_sec"].items())
    full = [v for _, v in per_s[1:-1]]
    if full:
        return float(statistics.fmean(full)), int(entry["num_requests"])
    span = entry["last_request_timestamp"] - entry["start_time"]
    return (entry["num_requests"] / span if span > 0 else 0.0), int(entry["num_requests"])


async def run_locust(url: str, *, users: int, seconds: float, run_dir: Path) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--json", "--skip-log", "-u", str(users), "-r", str(min(users, 100)),
        "-t", f"{max(3, round(seconds))}s", "--stop-timeout", "2", "--arch", "gateway",
        "--gateway-url", url, "--stream", "false", "--run-dir", str(run_dir),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=run_dir.parent
    )
    out, _ = await proc.communicate()
    if proc.returncode not in (0, 1):  # 1: some requests failed; the rate still stands
        raise RuntimeError(f"locust exited with {proc.returncode}")
    rate, n = locust_rate(json.loads(out))
    return {"rate_per_s": rate, "messages": n}


async def run_asyncio(url: str, *, users: int, seconds: float, label: str) -> dict[str, Any]:
    res = await closed_loop(
        clients.gateway(url), case=label, clients=users, round_no=0, duration_s=seconds,
        warmup=2, user_prefix=label,
    )  # fmt: skip
    return {"rate_per_s": res.rate_per_s, "messages": res.ok, "p50_ms": res.p50_ms}


async def run_loadgen(
    targets: dict[str, str],
    *,
    rounds: int,
    users: int,
    seconds: float,
    run_dir: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``targets``: name -> gateway URL. Every (generator, target) once per round, rotated."""
    combos = [(g, t) for t in targets for g in ("locust", "asyncio")]
    out = []
    for r in range(rounds):
        k = r % len(combos)
        for generator, target in combos[k:] + combos[:k]:
            url = targets[target]
            try:
                if generator == "locust":
                    trial_dir = run_dir / "locust" / f"{target}-{r}"
                    trial_dir.mkdir(parents=True, exist_ok=True)
                    m = await run_locust(url, users=users, seconds=seconds, run_dir=trial_dir)
                else:
                    label = f"lg{r}-{target}"
                    m = await run_asyncio(url, users=users, seconds=seconds, label=label)
            except (RuntimeError, ValueError, KeyError, StopIteration) as err:
                # One failed trial is a gap in the figure (and said in bench.json), not a lost run.
                m = {"rate_per_s": float("nan"), "error": f"{type(err).__name__}: {err}"}
            out.append({"round": r, "generator": generator, "target": target, "users": users, **m})
            if progress is not None:
                progress(out[-1])
    return out
