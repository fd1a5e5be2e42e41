"""``travelagent run loadtests/experiments/chaos.toml``: every path under steady light load while
faults are injected in turn, each counted (docs/chaos.md).

A chaos experiment (``kind = "chaos"``) names paths (``[[scenarios]]``, as any experiment does),
a light closed-loop load (``[load]``), the faults to inject (``faults``) and the phase timing
(``[phases]``). For each path one topology runs; for each fault that applies to the path a
*phase* runs on it: fresh users (fresh agents) start, ``before_s`` later the fault is injected
(a process killed and restarted, a link reset or black-holed, the clients' sockets reset
mid-reply), the users keep sending until ``after_s`` after the fault is over (the process
healthy again, the link clear), and the phase ends when every message they sent has ended
(each within ``load.timeout_s``). Faults are timed from the phase's
start. Nothing runs past its bounds: every wait has a timeout and the topology is stopped at
the end of its path.

Run layout (``data/runs/<id>/``)::

    run.json            kind "chaos", the resolved experiment, paths[], phases
    chaos.csv           one row per (fault, path): runner/count.py says how each is counted
    messages.parquet    every message of every phase (``cell`` = path, ``user`` = phase)
    stamps.parquet
    cells/<path>/       phases.json, finals.csv, topology/ (logs, SQLite files)
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import re
import shutil
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from travelagent.client.records import Recorder, finalize_run
from travelagent.client.runinfo import iso_now, write_run_json
from travelagent.config import JWT_SECRET_ENV
from travelagent.runner.count import COLUMNS, FaultCount, count_fault, store_duplicates
from travelagent.runner.experiment import ExperimentError, resolve_scenario
from travelagent.runner.load import LoadState, Target, UserLoad, run_users

FAULT_KINDS = (
    "none",  # a control phase: the same load, no fault
    "worker-kill",
    "realtime-restart",  # SIGTERM, then start again (history and outbox in SQLite)
    "realtime-kill",
    "agents-kill",  # only with agents = "remote"
    "link-reset",  # every link of the path: all connections reset
    "link-blackhole",  # every link of the path: a partition; bytes held for hold_s
    "client-reset",  # each client resets its own socket at its next reply chunk
)
ARCH_LINKS = {
    "gateway": ("client_worker", "worker_agents"),
    "realtime": ("client_realtime", "realtime_worker", "worker_realtime", "worker_agents"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
RESET_HOLD_S = 0.1  # a reset stays on this long: connections opened meanwhile are reset too


@dataclass(frozen=True)
class Phases:
    before_s: float = 1.0
    after_s: float = 3.0  # load goes on this long after the fault is over
    down_s: float = 1.0  # a killed process stays down this long before it is started again
    hold_s: float = 1.5  # a black hole lasts this long


@dataclass(frozen=True)
class ChaosPath:
    name: str
    preset: str
    arch: str
    overrides: dict[str, Any]
    scenario: Any

    @property
    def publish(self) -> str:
        return str(self.scenario.worker.publish) if self.arch == "realtime" else ""


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str = ""  # the process or link it acts on

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.target}" if self.kind.startswith("link-") else self.kind


@dataclass(frozen=True)
class ChaosExperiment:
    name: str
    description: str
    source: str
    paths: tuple[ChaosPath, ...]
    faults: tuple[str, ...]
    load: UserLoad
    phases: Phases

    def plan(self, path: ChaosPath) -> list[Fault]:
        """The faults that apply to ``path``, in the experiment's order."""
        from travelagent.topology.plan import active_links, components

        local = set(components(path.scenario))
        links = [ln for ln in ARCH_LINKS[path.arch] if ln in active_links(path.scenario)]
        out: list[Fault] = []
        for kind in self.faults:
            if kind == "none" or kind == "client-reset":
                out.append(Fault(kind))
            elif kind == "worker-kill" and "worker" in local:
                out.append(Fault(kind, "worker"))
            elif kind.startswith("realtime-") and path.arch == "realtime" and "realtime" in local:
                out.append(Fault(kind, "realtime"))
            elif kind == "agents-kill" and "agents" in local:
                out.append(Fault(kind, "agents"))
            elif kind in ("link-reset", "link-blackhole"):
                out.extend(Fault(kind, link) for link in links)
            elif kind.partition(":")[0] in ("link-reset", "link-blackhole"):
                base, _, link = kind.partition(":")  # one link only: where it exists
                if link in links:
                    out.append(Fault(base, link))
        return out

    def estimate_s(self) -> float:
        ph = self.phases
        per_phase = ph.before_s + ph.after_s + max(ph.down_s + 2.0, ph.hold_s) + 0.5
        return sum(5.0 + per_phase * len(self.plan(p)) for p in self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "chaos",
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "faults": list(self.faults),
            "load": self.load.__dict__,
            "phases": self.phases.__dict__,
            "scenarios": [
                {"name": p.name, "preset": p.preset, "arch": p.arch, "overrides": p.overrides}
                for p in self.paths
            ],
        }


def is_chaos(path: Path) -> bool:
    """Whether the experiment file says ``kind = "chaos"`` (unreadable files say no: the
    ordinary parser then reports what is wrong with them)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh).get("kind") == "chaos"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _num(src: str, key: str, value: Any, minimum: float, *, whole: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
        or (whole and not float(value).is_integer())
    ):
        kind = "a whole number" if whole else "a number"
        raise ExperimentError(f"{src}: {key} must be {kind} >= {minimum:g}, got {value!r}")
    return float(value)


def parse_chaos(data: dict[str, Any], *, source: str = "<chaos>") -> ChaosExperiment:
    src = source
    allowed = {"name", "kind", "description", "load", "phases", "faults", "scenarios"}
    for key in data:
        if key not in allowed:
            raise ExperimentError(
                f"{src}: {key} is not a chaos experiment key; known: {', '.join(sorted(allowed))}"
            )
    if data.get("kind") != "chaos":
        raise ExperimentError(f"{src}: kind must be 'chaos', got {data.get('kind')!r}")
    name = data.get("name", Path(source).stem if source != "<chaos>" else "chaos")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(f"{src}: name must be 1-48 letters, digits, '-', '_' or '.'")

    raw_load = data.get("load", {})
    if not isinstance(raw_load, dict):
        raise ExperimentError(f"{src}: load must be a table")
    known_load = set(UserLoad.__dataclass_fields__)
    values: dict[str, Any] = {}
    for key, value in raw_load.items():
        if key not in known_load:
            raise ExperimentError(
                f"{src}: load.{key} is not a chaos load setting; known: "
                f"{', '.join(sorted(known_load))}"
            )
        if key == "message_mix":
            if not isinstance(value, str):
                raise ExperimentError(f"{src}: load.message_mix must be a string")
            values[key] = value
        elif key in ("users", "rotate_every"):
            values[key] = int(_num(src, f"load.{key}", value, 1 if key == "users" else 0,
                                   whole=True))  # fmt: skip
        else:
            values[key] = _num(src, f"load.{key}", value, 0.001 if key == "timeout_s" else 0)
    load = UserLoad(**values)
    from travelagent.runner.messages import load_mix

    try:
        load_mix(load.message_mix)
    except ValueError as err:
        raise ExperimentError(f"{src}: load.message_mix: {err}") from None

    raw_phases = data.get("phases", {})
    if not isinstance(raw_phases, dict):
        raise ExperimentError(f"{src}: phases must be a table")
    known_phases = set(Phases.__dataclass_fields__)
    for key in raw_phases:
        if key not in known_phases:
            raise ExperimentError(
                f"{src}: phases.{key} is not a phase setting; known: "
                f"{', '.join(sorted(known_phases))}"
            )
    phases = Phases(**{k: _num(src, f"phases.{k}", v, 0) for k, v in raw_phases.items()})
    if phases.after_s <= 0:
        raise ExperimentError(f"{src}: phases.after_s must be > 0 (load after the fault)")

    faults = data.get("faults", list(FAULT_KINDS))
    if not isinstance(faults, list) or not faults:
        raise ExperimentError(f"{src}: faults must be a non-empty list of fault kinds")
    for f in faults:
        f_kind, _, f_link = str(f).partition(":")
        all_links = {ln for lns in ARCH_LINKS.values() for ln in lns}
        if f_kind in ("link-reset", "link-blackhole") and f_link:
            if f_link not in all_links:
                known = ", ".join(sorted(all_links))
                raise ExperimentError(f"{src}: faults: {f!r}: no link {f_link!r}; known: {known}")
            continue
        if f not in FAULT_KINDS:
            raise ExperimentError(
                f"{src}: faults: {f!r} is not a fault kind; known: {', '.join(FAULT_KINDS)}"
            )

    base = Path(source).parent if source != "<chaos>" else None
    raw = data.get("scenarios")
    if not isinstance(raw, list) or not raw:
        raise ExperimentError(f"{src}: scenarios must be a non-empty array of tables")
    paths: list[ChaosPath] = []
    for i, s in enumerate(raw):
        key = f"scenarios[{i}]"
        if not isinstance(s, dict):
            raise ExperimentError(f"{src}: {key} must be a table")
        extra = set(s) - {"name", "preset", "arch", "overrides"}
        if extra:
            raise ExperimentError(f"{src}: {key}.{sorted(extra)[0]} is not a scenario key")
        preset = s.get("preset")
        if not isinstance(preset, str) or not preset:
            raise ExperimentError(f"{src}: {key}.preset is required")
        arch = s.get("arch")
        if arch not in ARCH_LINKS:
            raise ExperimentError(
                f"{src}: {key}.arch must be one of {', '.join(ARCH_LINKS)} in a chaos "
                f"experiment, got {arch!r}"
            )
        overrides = s.get("overrides", {})
        if not isinstance(overrides, dict):
            raise ExperimentError(f"{src}: {key}.overrides must be a table of dotted keys")
        pname = s.get("name", f"{arch}-{Path(preset).stem}")
        if not isinstance(pname, str) or not _NAME.match(pname):
            raise ExperimentError(f"{src}: {key}.name must be 1-48 letters, digits, '-', '_', '.'")
        scenario = resolve_scenario(preset, overrides, base=base)
        paths.append(ChaosPath(pname, preset, str(arch), dict(overrides), scenario))
    if len({p.name for p in paths}) != len(paths):
        raise ExperimentError(f"{src}: scenario names must be unique")
    return ChaosExperiment(
        name=name,
        description=str(data.get("description", "")),
        source=source,
        paths=tuple(paths),
        faults=tuple(faults),
        load=load,
        phases=phases,
    )


def load_chaos(path: Path) -> ChaosExperiment:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ExperimentError(f"{path}: not valid TOML: {err}") from None
    return parse_chaos(data, source=str(path))


# -- injecting ----------------------------------------------------------------------------------


@dataclass
class PhaseLog:
    fault: str
    target: str
    prefix: str
    started_ns: int = 0
    injected_ns: int = 0
    cleared_ns: int = 0
    ended_ns: int = 0
    inject_error: str = ""
    resets_done: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    client_exceptions: dict[str, int] = field(default_factory=dict)
    settle_s: float = 0.0  # before the phase: until a probe message got an ok reply
    settled: bool = True


def _inject(topo: Any, fault: Fault, phases: Phases, log: PhaseLog, state: LoadState) -> None:
    """Carry out one fault (blocking; run in a thread so the load goes on)."""
    log.injected_ns = time.time_ns()
    kind = fault.kind
    if kind in ("worker-kill", "realtime-kill", "agents-kill", "realtime-restart"):
        sig = signal.SIGTERM if kind == "realtime-restart" else signal.SIGKILL
        topo.kill(fault.target, sig)
        time.sleep(phases.down_s)
        topo.restart(fault.target)
    elif kind == "link-reset":
        topo.set_fault(fault.target, "reset", True)
        time.sleep(RESET_HOLD_S)
        topo.set_fault(fault.target, "reset", False)
    elif kind == "link-blackhole":
        topo.set_fault(fault.target, "blackhole", True)
        time.sleep(phases.hold_s)
        topo.set_fault(fault.target, "blackhole", False)
    elif kind == "client-reset":
        assert state.reset_mid_reply is not None
        state.reset_mid_reply.set()
    log.cleared_ns = time.time_ns()


SETTLE_LIMIT_S = 30.0


def _target(topo: Any, path: ChaosPath, run_id: str, cell: str) -> Target:
    return Target(
        arch=path.arch,
        url=topo.urls["gateway" if path.arch == "gateway" else "realtime"],
        jwt_secret=topo.secrets[JWT_SECRET_ENV],
        run=run_id,
        cell=cell,
        publish=path.publish,
        stream=bool(path.scenario.worker.stream),
    )


async def _settle(
    topo: Any, exp: ChaosExperiment, path: ChaosPath, index: int, run_id: str
) -> tuple[float, bool]:
    """Probe the path with one user until a message gets an ok reply (at most
    ``SETTLE_LIMIT_S``); (seconds it took, whether it did). Its messages are not counted."""
    t0 = time.monotonic()
    target = _target(topo, path, run_id, f"{path.name}-settle")
    probe = UserLoad(users=1, think_ms=100, timeout_s=exp.load.timeout_s,
                     message_mix=exp.load.message_mix, rotate_every=0)  # fmt: skip

    class _Sink:
        ok = False

        def add(self, rec: Any) -> None:
            if rec.status == "ok":
                self.ok = True
                state.stop_at = 0.0  # done: the user stops after this message

    sink = _Sink()
    state = LoadState()
    await run_users(target, probe, sink, state, prefix=f"{path.name}-s{index}",  # type: ignore[arg-type]
                    duration_s=SETTLE_LIMIT_S)  # fmt: skip
    return (time.monotonic() - t0, sink.ok)


async def _phase(
    topo: Any, exp: ChaosExperiment, path: ChaosPath, fault: Fault, index: int,
    recorder: Recorder, run_id: str, finals: dict[str, int],
) -> PhaseLog:  # fmt: skip
    prefix = f"{path.name}-p{index}"
    log = PhaseLog(fault.name, fault.target, prefix)
    state = LoadState(reset_mid_reply=asyncio.Event())
    target = _target(topo, path, run_id, path.name)
    ph = exp.phases
    log.started_ns = time.time_ns()
    load = asyncio.create_task(
        run_users(
            target,
            exp.load,
            recorder,
            state,
            prefix=prefix,
            duration_s=ph.before_s + ph.after_s,
            seed=index,
        )
    )
    await asyncio.sleep(ph.before_s)
    state.stop_at = math.inf  # the load goes on for as long as the fault takes
    if fault.kind == "none":
        log.injected_ns = log.cleared_ns = time.time_ns()
    else:
        try:
            await asyncio.to_thread(_inject, topo, fault, ph, log, state)
        except Exception as err:  # recorded; the counts say what it did to the load
            log.inject_error = f"{type(err).__name__}: {err}"[:500]
            log.cleared_ns = time.time_ns()
    # after_s of load once the fault is over (a restarted process healthy, a link clear)
    state.cleared_at = time.monotonic()
    state.stop_at = state.cleared_at + ph.after_s
    await load
    log.ended_ns = time.time_ns()
    log.resets_done = state.resets_done
    log.connect_failures = dict(state.connect_failures)
    log.client_exceptions = dict(state.client_exceptions)
    for mid, n in state.finals.items():
        finals[mid] = finals.get(mid, 0) + n
    return log


def _run_path(
    exp: ChaosExperiment, path: ChaosPath, run_dir: Path, run_id: str,
    progress: Any = None,
) -> dict[str, Any]:  # fmt: skip
    from travelagent.topology.launcher import Topology

    cell_dir = run_dir / "cells" / path.name
    cell_dir.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(cell_dir, tag=f"chaos-{path.name}")
    finals: dict[str, int] = {}
    logs: list[PhaseLog] = []
    info: dict[str, Any] = {"path": path.name, "arch": path.arch, "publish": path.publish,
                            "scenario": path.scenario.to_dict(), "status": "failed", "error": "",
                            "started": iso_now()}  # fmt: skip
    topo_dir = cell_dir / "topology"
    try:
        with Topology(path.scenario, run_dir=topo_dir) as topo:
            for i, fault in enumerate(exp.plan(path)):
                if progress is not None:
                    progress(path, fault)
                # The previous phase's fault must not spill into this one: wait until the path
                # answers again (bounded), and say how long that took.
                settle = asyncio.run(_settle(topo, exp, path, i, run_id)) if i else (0.0, True)
                log = asyncio.run(_phase(topo, exp, path, fault, i, recorder, run_id, finals))
                log.settle_s, log.settled = round(settle[0], 3), settle[1]
                logs.append(log)
            crashes = [c.name for c in topo.crashes]
            info["status"] = "ok" if not crashes else "failed"
            if crashes:
                info["error"] = f"processes crashed on their own: {', '.join(crashes)}"
    except Exception as err:  # the path is reported; the experiment goes on
        info["error"] = f"{type(err).__name__}: {err}"[:2000]
    recorder.close()
    finalize_run(cell_dir)
    (cell_dir / "phases.json").write_text(json.dumps([lg.__dict__ for lg in logs], indent=2))
    with open(cell_dir / "finals.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["msg_id", "finals"])
        w.writerows(sorted(finals.items()))
    info["rows"] = [r.row() for r in count_path(cell_dir, path, logs, finals)]
    info["ended"] = iso_now()
    # the path's records join the run's
    parts = run_dir / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    for kind in ("messages", "stamps"):
        src = cell_dir / f"{kind}.parquet"
        if src.exists():
            shutil.move(str(src), parts / f"{kind}-cell-{path.name}.parquet")
    finalize_run(run_dir)
    return info


def count_path(
    cell_dir: Path, path: ChaosPath, logs: list[PhaseLog], finals: dict[str, int]
) -> list[FaultCount]:
    import pandas as pd

    msgs_path = cell_dir / "messages.parquet"
    msgs = pd.read_parquet(msgs_path) if msgs_path.exists() else pd.DataFrame(
        columns=["msg_id", "user", "agent", "status", "error", "send_ns", "recv_ns"]
    )  # fmt: skip
    topo = cell_dir / "topology"
    stores = [topo / "worker.sqlite3", topo / "agents.sqlite3"]
    rows: list[FaultCount] = []
    for lg in logs:
        mine = msgs[msgs["user"].astype(str).str.startswith(lg.prefix + "-u")]
        records: list[dict[str, Any]] = [
            {
                "msg_id": r["msg_id"], "status": r["status"], "error": r["error"],
                "send_ns": int(r["send_ns"]),
                "recv_ns": None if pd.isna(r["recv_ns"]) else int(r["recv_ns"]),
            }
            for r in mine.to_dict("records")
        ]  # fmt: skip
        agents = set(mine["agent"].astype(str))
        dups = store_duplicates(stores, agents)
        fc = count_fault(
            lg.fault, path.name, records, injected_ns=lg.injected_ns,
            finals={m: finals.get(m, 0) for m in mine["msg_id"]},
            duplicated_turns=sum(dups.values()), started_ns=lg.started_ns, target=lg.target,
        )  # fmt: skip
        if lg.inject_error:
            fc.error_reasons = {**fc.error_reasons, f"[injection failed: {lg.inject_error}]": 0}
        rows.append(fc)
    return rows


def write_chaos_csv(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    path = run_dir / "chaos.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return path


def run_chaos(exp: ChaosExperiment, run_dir: Path, *, progress: Any = None) -> str:
    """Run every path into ``run_dir``; returns ok | failed | interrupted."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.name
    paths: list[dict[str, Any]] = []
    write_run_json(run_dir, {"kind": "chaos", "experiment": exp.to_dict(), "started": iso_now(),
                             "ended": None, "status": "running", "paths": paths})  # fmt: skip
    status = "ok"
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        for path in exp.paths:
            info = _run_path(exp, path, run_dir, run_id, progress)
            paths.append(info)
            rows.extend(info["rows"])
            write_chaos_csv(run_dir, rows)
            if info["status"] != "ok":
                status = "failed"
            write_run_json(run_dir, {"paths": paths})
    except KeyboardInterrupt:
        status = "interrupted"
    write_chaos_csv(run_dir, rows)
    if not (run_dir / "messages.parquet").exists():
        finalize_run(run_dir)
    write_run_json(run_dir, {"paths": paths, "status": status, "ended": iso_now(),
                             "elapsed_s": round(time.monotonic() - t0, 1)})  # fmt: skip
    return status


def print_table(rows: list[dict[str, Any]]) -> str:
    """chaos.csv as a plain-text table (the reasons left out; they are in the file)."""
    cols = ["fault", "path", "sent", "replied", "errored", "lost", "duplicated", "recovery_s"]
    table = [cols] + [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                     for row in table)  # fmt: skip
