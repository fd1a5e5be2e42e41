"""Run an experiment: for every cell, a fresh topology, Locust headless, the records filed.

Layout of a run (``data/runs/<id>/``)::

    run.json                    kind "experiment", status, the resolved experiment, cells[]
    messages.parquet            every cell's messages (``cell`` column)
    stamps.parquet
    cells/<cell>/               locust_stats.csv ..., locust.html, locust.log,
                                latency-{corrected,uncorrected}.hlog, topology/ (logs)
    attempts/<cell>/a<k>/       an attempt the self-check flagged and that was run again
                                (``retry_flagged``): its cell directory (cell/) and its
                                messages.parquet and stamps.parquet, taken out of the run's
                                own two files

A cell that fails (topology does not start, Locust crashes) is marked ``failed`` with the error
and the run goes on; Ctrl-C stops the cell in progress cleanly, marks it ``interrupted``, keeps
its records and every finished cell, and ends the run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from travelagent.agent.llm.lateness import LATENESS_DIR_ENV, read_lateness
from travelagent.client.records import finalize_run
from travelagent.client.runinfo import iso_now, write_run_json
from travelagent.config import JWT_SECRET_ENV
from travelagent.monitor import CpuSampler
from travelagent.runner.experiment import Cell, Experiment
from travelagent.runner.selfcheck import assess, send_lateness_ms

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
LOCUST_GRACE_S = 30.0  # beyond the cell's duration and stop timeout, before Locust is killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_command(cell: Cell, *, urls: dict[str, str], cell_dir: Path, run_id: str) -> list[str]:
    """The Locust command line for one cell."""
    shape, load, entry = cell.shape, cell.load, cell.entry
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--users", str(shape.peak_users),
        "--spawn-rate", f"{shape.spawn(shape.peak_users):g}",
        "--run-time", f"{cell.duration_s:g}s",
        "--stop-timeout", f"{load.stop_timeout_s:g}",
        "--csv", str(cell_dir / "locust"),
        "--html", str(cell_dir / "locust.html"),
        "--arch", entry.arch,
        "--stream", "true" if entry.streaming else "false",
        "--pace", "open" if shape.open_loop else load.pace,
        "--rate-per-user", f"{shape.rate_per_user if shape.open_loop else load.rate_per_user:g}",
        "--arrivals", load.arrivals,
        "--think-ms", f"{load.think_ms:g}",
        "--start-spread-ms", f"{load.start_spread_ms:g}",
        "--timeout-s", f"{load.timeout_s:g}",
        "--message-mix", load.message_mix,
        "--run-dir", str(cell_dir),
        "--run-id", run_id,
        "--cell", cell.name,
        "--user-prefix", cell.name,
        "--message-seed", str(cell.repetition),
        "--gateway-url", urls.get("gateway", ""),
        "--realtime-url", urls.get("realtime", ""),
    ]  # fmt: skip
    if entry.publish:
        cmd += ["--publish", entry.publish]
    if shape.kind != "constant":
        cmd += ["--shape", shape.kind, "--shape-params", json.dumps(shape.to_dict())]
    if load.processes > 1:
        # A port of its own: Locust's default master port would let the workers of another
        # run on this host join this one.
        port = str(free_port())
        cmd += [
            "--processes",
            str(load.processes),
            "--master-bind-port",
            port,
            "--master-port",
            port,
        ]
    return cmd


def _count_messages(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def file_cell_records(run_dir: Path, cell_dir: Path, cell: Cell) -> int:
    """Merge the cell's part files, write its HdrHistogram logs, and move its rows into the
    run's Parquet files. Returns the cell's message count."""
    import pandas as pd

    from travelagent.runner.hdr import write_cell_logs

    if (cell_dir / "parts").exists() or (cell_dir / "messages.parquet").exists():
        finalize_run(cell_dir)
    msgs_path = cell_dir / "messages.parquet"
    if not msgs_path.exists():
        return 0
    write_cell_logs(
        pd.read_parquet(msgs_path), cell_dir, cell=cell.name, think_ms=cell.load.think_ms
    )
    n = _count_messages(msgs_path)
    parts = run_dir / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    # One part per cell; finalize_run de-duplicates by msg_id, so filing twice is harmless.
    shutil.move(str(msgs_path), parts / f"messages-cell-{cell.name}.parquet")
    shutil.move(str(cell_dir / "stamps.parquet"), parts / f"stamps-cell-{cell.name}.parquet")
    finalize_run(run_dir)
    return n


def _stop_locust(proc: subprocess.Popen[bytes]) -> None:
    """Ask Locust to stop (SIGINT: it stops users, writes its reports and records)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=LOCUST_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def shape_info(cell: Cell) -> dict[str, Any]:
    """The cell's shape for run.json; open-loop cells also say their offered rate."""
    info: dict[str, Any] = {"name": cell.shape_name, **cell.shape.summary()}
    if cell.shape.open_loop:
        info["rate_per_s"] = cell.shape.target_rps
    elif cell.load.pace == "open":
        info["rate_per_s"] = cell.shape.peak_users * cell.load.rate_per_user
    info["pace"] = "open" if cell.shape.open_loop else cell.load.pace
    return info


def _save_link_counters(topo: Any, path: Path) -> dict[str, Any]:
    """Each link's shape, faults and counters at the end of the cell (connections, bytes,
    chunks and lateness per direction), beside the cell's records; a links process that is gone
    is noted."""
    try:
        links: dict[str, Any] = topo.links()
    except Exception as err:  # the measurement stands without them
        links = {"error": f"link counters unavailable: {err}"}
    path.write_text(json.dumps(links, indent=2, sort_keys=True) + "\n")
    return links


def _health(topo: Any) -> dict[str, dict[str, Any]]:
    """``/healthz`` of the worker and the realtime service (their event-loop lag), direct."""
    import urllib.request

    out: dict[str, dict[str, Any]] = {}
    for name in ("worker", "realtime"):
        port = topo.ports.get(name) if name in topo.pids else None
        if not port:
            continue
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
                out[name] = json.loads(resp.read())
        except Exception as err:  # a process that died is flagged by the topology itself
            out[name] = {"error": f"/healthz unavailable: {err}"}
    return out


def _message_window(run_dir: Path, cell: Cell) -> tuple[int, int] | None:
    """First send and last reply of the cell's messages (wall-clock ns)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = run_dir / "messages.parquet"
    if not path.exists():
        return None
    t = pq.read_table(path, columns=["cell", "send_ns", "recv_ns"],
                      filters=[("cell", "==", cell.name)])  # fmt: skip
    lo, hi = pc.min(t["send_ns"]).as_py(), pc.max(t["recv_ns"]).as_py()
    if lo is None or hi is None:
        return None
    return (int(lo), int(hi))


def _send_lateness(run_dir: Path, cell: Cell) -> list[float]:
    """How late the cell's clients sent each message (ms; ``selfcheck.send_lateness_ms``)."""
    import pyarrow.parquet as pq

    path = run_dir / "messages.parquet"
    if not path.exists():
        return []
    t = pq.read_table(path, columns=["user", "intended_ns", "send_ns", "recv_ns", "status"],
                      filters=[("cell", "==", cell.name)]).to_pylist()  # fmt: skip
    open_loop = cell.shape.open_loop or cell.load.pace == "open"
    think_ms = 0.0 if open_loop else cell.load.think_ms
    return send_lateness_ms(t, open_loop=open_loop, think_ms=think_ms)


def _json_safe(x: Any) -> Any:
    """NaN and infinities as null: selfcheck.json stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_selfcheck(
    cell_dir: Path,
    run_dir: Path,
    cell: Cell,
    sampler: CpuSampler,
    health: dict[str, dict[str, Any]],
    links: dict[str, Any],
) -> dict[str, Any]:
    """``cpu.csv`` (every sample) and ``selfcheck.json`` (figures and flags) for the cell."""
    with open(cell_dir / "cpu.csv", "w") as fh:
        fh.write("t_ns,process,cpu_pct\n")
        fh.writelines(f"{t},{name},{pct}\n" for t, name, pct in sampler.samples)
    log = cell_dir / "locust.log"
    check = assess(
        samples=sampler.samples,
        window_ns=_message_window(run_dir, cell),
        health=health,
        links=links,
        locust_log=log.read_text(errors="replace") if log.exists() else "",
        sampling=sampler.supported,
        llm_lateness=read_lateness(cell_dir / "llm_lateness"),
        send_lateness=_send_lateness(run_dir, cell),
    )
    (cell_dir / "selfcheck.json").write_text(json.dumps(_json_safe(check), indent=2) + "\n")
    return check


def run_cell(cell: Cell, run_dir: Path, run_id: str) -> dict[str, Any]:
    """Bring up the cell's topology, run Locust against it, stop everything, file records."""
    from travelagent.topology.launcher import Topology

    cell_dir = run_dir / "cells" / cell.name
    cell_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "cell": cell.name,
        "scenario_name": cell.entry.name,
        "scenario": cell.entry.scenario.to_dict(),
        "preset": cell.entry.preset,
        "overrides": cell.entry.overrides,
        "arch": cell.entry.arch,
        "publish": cell.entry.publish,
        "streaming": cell.entry.streaming,
        "shape": shape_info(cell),
        "users": cell.shape.peak_users,
        "duration_s": cell.duration_s,
        "repetition": cell.repetition,
        # user k of every cell with this seed asks the same questions (paired cells)
        "message_seed": cell.repetition,
        "load": cell.load.to_dict(),
        "status": "failed",
        "error": "",
        "started": iso_now(),
        "ended": None,
        "messages": 0,
    }
    interrupted = False
    sampler = CpuSampler({})
    health: dict[str, dict[str, Any]] = {}
    links: dict[str, Any] = {}
    try:
        llm_late_dir = cell_dir / "llm_lateness"
        llm_late_dir.mkdir(exist_ok=True)
        with Topology(
            cell.entry.scenario,
            run_dir=cell_dir / "topology",
            # the simulated model's timer lateness (agent.llm.lateness), for the self-check
            env={LATENESS_DIR_ENV: str(llm_late_dir.resolve())},
        ) as topo:
            cmd = locust_command(cell, urls=topo.urls, cell_dir=cell_dir, run_id=run_id)
            info["locust_command"] = cmd
            env = {**os.environ, **topo.secrets, "PYTHONPATH": str(ROOT)}
            env.setdefault(JWT_SECRET_ENV, topo.secrets.get(JWT_SECRET_ENV, ""))
            with open(cell_dir / "locust.log", "wb") as log:
                # Own process group: a Ctrl-C reaches the runner only, which stops Locust itself.
                proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                    start_new_session=True,
                )  # fmt: skip
                sampler = CpuSampler({**topo.pids, "locust": proc.pid}).start()
                limit_s = cell.duration_s + cell.load.stop_timeout_s + LOCUST_GRACE_S
                try:
                    code = proc.wait(timeout=limit_s)
                except subprocess.TimeoutExpired:
                    _stop_locust(proc)
                    code = proc.returncode
                    info["error"] = f"Locust ran past {limit_s:g} s and was stopped"
                except KeyboardInterrupt:
                    interrupted = True
                    _stop_locust(proc)
                    code = proc.returncode
                finally:
                    sampler.stop()
            health = _health(topo)
            links = _save_link_counters(topo, cell_dir / "links.json")
            crashes = [c.name for c in getattr(topo, "crashes", [])]
            # Locust exits 1 when any request failed: a measurement, not a failed cell.
            if interrupted:
                info["status"] = "interrupted"
            elif code in (0, 1) and not info["error"] and not crashes:
                info["status"] = "ok"
            elif crashes:
                info["error"] = f"topology processes crashed: {', '.join(crashes)}"
            elif not info["error"]:
                info["error"] = f"Locust exited with {code}; see {cell_dir / 'locust.log'}"
            info["locust_exit_code"] = code
    except KeyboardInterrupt:
        interrupted = True
        info["status"] = "interrupted"
    except Exception as err:  # a cell that cannot run is reported, and the run goes on
        info["error"] = f"{type(err).__name__}: {err}"
    try:
        info["messages"] = file_cell_records(run_dir, cell_dir, cell)
    except Exception as err:
        info["status"] = "failed" if not interrupted else "interrupted"
        info["error"] = (info["error"] + "; " if info["error"] else "") + f"records: {err}"
    try:
        check = write_selfcheck(cell_dir, run_dir, cell, sampler, health, links)
        info["selfcheck"] = {"flagged": check["flagged"], "flags": check["flags"]}
    except Exception as err:  # the records stand; the cell just says it could not check
        info["selfcheck"] = {"flagged": False, "flags": [], "error": f"{err}"}
    info["ended"] = iso_now()
    if interrupted:
        raise CellInterrupted(info)
    return info


def set_aside(run_dir: Path, info: dict[str, Any], k: int) -> dict[str, Any]:
    """Move a filed attempt of a cell out of the run, to ``attempts/<cell>/a<k>/``: its cell
    directory, and its messages and stamps out of the run's Parquet files (nothing is deleted).
    Returns what run.json says of it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from travelagent.client.records import write_atomic

    name = str(info["cell"])
    dest = run_dir / "attempts" / name / f"a{k}"
    dest.mkdir(parents=True, exist_ok=True)
    cell_dir = run_dir / "cells" / name
    if cell_dir.exists():
        shutil.move(str(cell_dir), dest / "cell")
    msgs_path, stamps_path = run_dir / "messages.parquet", run_dir / "stamps.parquet"
    if msgs_path.exists():
        msgs = pq.read_table(msgs_path)
        mine = pc.equal(msgs.column("cell"), pa.scalar(name))
        write_atomic(msgs.filter(mine), dest / "messages.parquet")
        ids = msgs.filter(mine).column("msg_id")
        write_atomic(msgs.filter(pc.invert(mine)), msgs_path)
        if stamps_path.exists():
            stamps = pq.read_table(stamps_path)
            theirs = pc.is_in(stamps.column("msg_id"), value_set=ids)
            write_atomic(stamps.filter(theirs), dest / "stamps.parquet")
            write_atomic(stamps.filter(pc.invert(theirs)), stamps_path)
    check = info.get("selfcheck") or {}
    return {
        "attempt": k,
        "dir": str(dest.relative_to(run_dir)),
        "flags": list(check.get("flags") or []),
        "messages": info.get("messages", 0),
        "started": info.get("started"),
        "ended": info.get("ended"),
    }


def _flagged(info: dict[str, Any]) -> bool:
    return info.get("status") == "ok" and bool((info.get("selfcheck") or {}).get("flagged"))


class CellInterrupted(KeyboardInterrupt):
    """Ctrl-C during a cell; carries the cell's (filed) info."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__()
        self.info = info


def run_experiment(
    experiment: Experiment,
    run_dir: Path,
    *,
    progress: Callable[[Cell, int, int], None] | None = None,
    done: Callable[[Cell, dict[str, Any]], None] | None = None,
    again: Callable[[Cell, dict[str, Any], int], None] | None = None,
) -> str:
    """Run every cell into ``run_dir``; return the run's status (ok | failed | interrupted).
    A cell the self-check flagged runs again, up to ``experiment.retry_flagged`` times while
    the re-runs' time budget lasts; the cell keeps its last attempt and run.json lists the
    earlier ones (``attempts``), which stay on disk. ``again(cell, info, k)`` is told before
    re-run k."""
    cells = experiment.cells()
    run_id = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    base = {
        "kind": "experiment",
        "run_id": run_id,
        "experiment": experiment.to_dict(),
        "planned_cells": [c.name for c in cells],
        "started": iso_now(),
        "ended": None,
        "status": "running",
        "cells": results,
    }
    write_run_json(run_dir, base)
    status = "ok"
    t0 = time.monotonic()
    retry_s = 0.0
    budget_s = experiment.retry_budget_s or math.inf
    try:
        for i, cell in enumerate(cells):
            if progress is not None:
                progress(cell, i, len(cells))
            attempts: list[dict[str, Any]] = []
            try:
                info = run_cell(cell, run_dir, run_id)
                while (_flagged(info) and len(attempts) < experiment.retry_flagged
                       and retry_s < budget_s):  # fmt: skip
                    attempts.append(set_aside(run_dir, info, len(attempts) + 1))
                    if again is not None:
                        again(cell, info, len(attempts))
                    t_retry = time.monotonic()
                    try:
                        info = run_cell(cell, run_dir, run_id)
                    finally:
                        retry_s += time.monotonic() - t_retry
                    info["attempts"] = list(attempts)
            except CellInterrupted as stop:
                if attempts:
                    stop.info["attempts"] = attempts
                results.append(stop.info)
                status = "interrupted"
                break
            results.append(info)
            if info["status"] != "ok":
                status = "failed"
            elapsed_s = round(time.monotonic() - t0, 1)
            write_run_json(run_dir, {"cells": results, "elapsed_s": elapsed_s})
            if done is not None:
                done(cell, info)
    except KeyboardInterrupt:  # between cells: every finished cell is already filed
        status = "interrupted"
    if not (run_dir / "messages.parquet").exists():
        finalize_run(run_dir)  # an empty but well-formed pair of files
    write_run_json(
        run_dir,
        {
            "cells": results,
            "status": status,
            "ended": iso_now(),
            "elapsed_s": round(time.monotonic() - t0, 1),
            "retry_s": round(retry_s, 1),
        },
    )
    return status
