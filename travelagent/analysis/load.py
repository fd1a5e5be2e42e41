"""Loading runs (design section 5) into pandas.

A ``Run`` holds the run's metadata (run.json), one row per message, the stamps, and one row
per cell with the factors the comparisons pair on (arch, publish mode, streaming, webhook mode,
LLM profile, offered load, links). Times stay integer nanoseconds (nullable ``Int64``) so that
differences are exact; derived latencies are float milliseconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from travelagent.client.records import MESSAGES_SCHEMA, STAMPS_SCHEMA

NS_PER_MS = 1_000_000
# Factors a cell is described by; comparisons pair cells that agree on all but the varied ones.
FACTORS = ("arch", "publish", "streaming", "webhook_mode", "agents", "profile", "load", "links")


class RunError(ValueError):
    """A directory is not a readable run."""


@dataclass
class Run:
    path: Path
    meta: dict[str, Any]
    messages: pd.DataFrame
    stamps: pd.DataFrame
    cells: pd.DataFrame
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def hops(self) -> pd.DataFrame:
        """Consecutive stamp pairs per message (see ``hops.compute_hops``), computed once."""
        if "hops" not in self._cache:
            from travelagent.analysis.hops import compute_hops

            self._cache["hops"] = compute_hops(self)
        hops: pd.DataFrame = self._cache["hops"]
        return hops

    def ok(self) -> pd.DataFrame:
        """Messages that got a complete reply."""
        return self.messages[self.messages["status"] == "ok"]


def _read(run_dir: Path, name: str, schema: pa.Schema) -> pd.DataFrame:
    merged = run_dir / f"{name}.parquet"
    if merged.exists():
        files = [merged]
    else:  # a run still being recorded (or never finalized): read its part files as they are
        files = sorted((run_dir / "parts").glob(f"{name}-*.parquet"))
    tables = [pq.read_table(f, schema=schema) for f in files]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    mapper = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}
    return table.to_pandas(types_mapper=mapper.get)


def _shape_rate(shape: dict[str, Any]) -> Any:
    return shape.get("rate_per_s", shape.get("target_rps"))


def _shape_load(shape: dict[str, Any]) -> str:
    """A label equal for equal offered loads (the shape's name is only a name)."""
    kind = shape.get("kind", "")
    if kind in ("constant", "closed"):
        parts = [f"users={shape.get('users')}"]
        if _shape_rate(shape) is not None:
            parts.append(f"rate={_shape_rate(shape)}/s")
        return " ".join(parts)
    return json.dumps({k: v for k, v in shape.items() if k != "name"}, sort_keys=True)


_REP_SUFFIX = re.compile(r"-r(\d+)$")
_USER_NUMBER = re.compile(r"-u(\d+)$")


def _config_name(cell: str, repetition: int) -> str:
    """The configuration a cell repeats: its name without the ``-r<N>`` suffix."""
    m = _REP_SUFFIX.search(cell)
    return cell[: m.start()] if m and int(m.group(1)) == repetition else cell


def pairing_keys(messages: pd.DataFrame) -> pd.DataFrame:
    """``user_key`` (user k: the number at the end of the user id) and ``seq`` (the message's
    index in that user's sequence, by send order, every status counted): user k's message i
    of two cells of one repetition asked the same question (see ``runner.messages``)."""
    out = pd.DataFrame(index=messages.index)
    num = messages["user"].astype(str).str.extract(_USER_NUMBER, expand=False)
    out["user_key"] = pd.to_numeric(num, errors="coerce").astype("Int64")
    order = messages["send_ns"].astype("float64").fillna(messages["intended_ns"].astype("float64"))
    out["seq"] = (
        order.groupby([messages["cell"], messages["user"]]).rank(method="first").astype("Int64") - 1
    )
    return out


def _cells_frame(meta: dict[str, Any], messages: pd.DataFrame) -> pd.DataFrame:
    rows = []
    seen = set()
    for c in meta.get("cells") or []:
        sc = c.get("scenario") or {}
        worker = sc.get("worker") or {}
        shape = c.get("shape") or {}
        arch = str(c.get("arch") or "")
        on_realtime = arch == "realtime"
        rows.append(
            {
                "cell": str(c.get("cell")),
                "arch": arch,
                # publish and webhook mode only matter on the realtime path
                "publish": str(c.get("publish") or worker.get("publish") or "")
                if on_realtime
                else "",
                "streaming": bool(c.get("streaming", worker.get("stream", False))),
                "webhook_mode": str(worker.get("webhook_mode") or "") if on_realtime else "",
                "agents": str(worker.get("agents") or "in-process"),
                "profile": str((sc.get("llm") or {}).get("profile") or ""),
                "load": _shape_load(shape),
                "users": shape.get("users", c.get("users")),
                "rate_per_s": _shape_rate(shape),
                "links": json.dumps(sc.get("links") or {}, sort_keys=True),
                "duration_s": c.get("duration_s"),
                "status": c.get("status", ""),
                "scenario_name": c.get("scenario_name", ""),
                "repetition": int(c.get("repetition") or 1),
                "message_seed": c.get("message_seed"),
                "flags": "; ".join((c.get("selfcheck") or {}).get("flags") or []),
                # attempts the self-check flagged, set aside and run again (retry_flagged)
                "attempts": len(c.get("attempts") or []),
                "attempt_flags": " | ".join(
                    "; ".join(a.get("flags") or []) for a in c.get("attempts") or []
                ),
            }
        )
        seen.add(str(c.get("cell")))
    # Cells with messages but no metadata (e.g. a probe): describe them from the messages.
    if len(messages):
        first = messages.groupby("cell", sort=False).first()
        for cell, m in first.iterrows():
            if cell in seen:
                continue
            rows.append(
                {
                    "cell": str(cell),
                    "arch": m["arch"],
                    "publish": m["publish"] if m["arch"] == "realtime" else "",
                    "streaming": bool(m["streaming"]),
                    "webhook_mode": "",
                    "agents": "",
                    "profile": "",
                    "load": "",
                    "users": None,
                    "rate_per_s": None,
                    "links": "{}",
                    "duration_s": None,
                    "status": "",
                    "scenario_name": "",
                    "repetition": 1,
                    "message_seed": None,
                    "flags": "",
                    "attempts": 0,
                    "attempt_flags": "",
                }
            )
    cells = pd.DataFrame(
        rows,
        columns=[*FACTORS, "cell", "users", "rate_per_s", "duration_s", "status", "scenario_name",
                 "repetition", "message_seed", "flags", "attempts", "attempt_flags"],
    )  # fmt: skip
    cells["config"] = [
        _config_name(c, r) for c, r in zip(cells["cell"], cells["repetition"], strict=True)
    ]
    cells["flagged"] = cells["flags"].astype(bool)
    counts = messages.groupby("cell")["status"].value_counts().unstack(fill_value=0)
    cells["messages"] = cells["cell"].map(counts.sum(axis=1)).fillna(0).astype(int)
    cells["ok"] = cells["cell"].map(counts["ok"] if "ok" in counts else {}).fillna(0).astype(int)
    return cells.set_index("cell", drop=False)


def load_run(path: str | Path) -> Run:
    """Load the run in directory ``path``; a clear ``RunError`` if it is not one."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    meta_path = run_dir / "run.json"
    meta: dict[str, Any] = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{meta_path}: not valid JSON ({err})") from err
    has_data = (run_dir / "messages.parquet").exists() or any(
        (run_dir / "parts").glob("messages-*.parquet")
    )
    if not has_data and not meta:
        raise RunError(f"{run_dir}: neither run.json nor messages.parquet; not a run directory")
    messages = _read(run_dir, "messages", MESSAGES_SCHEMA)
    stamps = _read(run_dir, "stamps", STAMPS_SCHEMA)
    messages = messages.drop_duplicates("msg_id").reset_index(drop=True)
    messages["service_ms"] = (messages["recv_ns"] - messages["send_ns"]).astype("Float64") / 1e6
    messages["corrected_ms"] = (messages["recv_ns"] - messages["intended_ns"]).astype(
        "Float64"
    ) / 1e6
    messages["ttfc_ms"] = (messages["first_ns"] - messages["send_ns"]).astype("Float64") / 1e6
    messages["corrected_ttfc_ms"] = (messages["first_ns"] - messages["intended_ns"]).astype(
        "Float64"
    ) / 1e6
    cells = _cells_frame(meta, messages)
    for col in ("webhook_mode", "profile", "load"):
        messages[col] = messages["cell"].map(cells[col]).fillna("")
    messages["config"] = messages["cell"].map(cells["config"]).fillna(messages["cell"])
    messages["repetition"] = messages["cell"].map(cells["repetition"]).fillna(1).astype(int)
    # Only cells recorded with paired message sequences (a message seed) pair up: in older
    # runs user k of two cells asked different questions.
    seeded = messages["cell"].map(cells["message_seed"].notna()).fillna(False).astype(bool)
    if len(messages):
        messages = messages.join(pairing_keys(messages))
        messages.loc[~seeded.to_numpy(), "user_key"] = pd.NA
    else:
        messages["user_key"] = pd.Series(dtype="Int64")
        messages["seq"] = pd.Series(dtype="Int64")
    return Run(path=run_dir, meta=meta, messages=messages, stamps=stamps, cells=cells)


def load_runs(paths: list[str | Path]) -> Run:
    """Several runs as one: cells are prefixed with their run id so they stay apart."""
    runs = [load_run(p) for p in paths]
    if len(runs) == 1:
        return runs[0]
    msgs, stamps, cells = [], [], []
    for r in runs:
        m = r.messages.copy()
        m["cell"] = r.run_id + "/" + m["cell"]
        m["config"] = r.run_id + "/" + m["config"]
        c = r.cells.copy()
        c["cell"] = r.run_id + "/" + c["cell"]
        c["config"] = r.run_id + "/" + c["config"]
        msgs.append(m)
        stamps.append(r.stamps)
        cells.append(c.set_index("cell", drop=False))
    meta = {"run_id": "+".join(r.run_id for r in runs), "runs": [r.meta for r in runs]}
    return Run(
        path=runs[0].path,
        meta=meta,
        messages=pd.concat(msgs, ignore_index=True),
        stamps=pd.concat(stamps, ignore_index=True),
        cells=pd.concat(cells),
    )


def locust_stats(run: Run) -> pd.DataFrame:
    """Locust's own per-cell summary (``cells/<cell>/locust_stats.csv``), when the run has it:
    an independent check of request counts and failures. Empty when there is none."""
    frames = []
    for f in sorted((run.path / "cells").glob("*/locust_stats.csv")):
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError):
            continue  # a cell cut short may leave a partial file; the records still count
        df.insert(0, "cell", f.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def project_root() -> Path:
    """The checkout holding data/: the first parent of the cwd with data/, else the package's."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "data" / "runs").is_dir() or (d / "pyproject.toml").is_file():
            return d
    return Path(__file__).resolve().parents[2]


def _is_run(d: Path) -> bool:
    return d.is_dir() and ((d / "run.json").exists() or (d / "messages.parquet").exists())


def latest_run(root: str | Path | None = None) -> Path | None:
    """The newest run directory under ``root`` (default data/runs), by run.json start time."""
    base = Path(root) if root is not None else project_root() / "data" / "runs"
    if not base.is_dir():
        return None
    runs = [d for d in base.iterdir() if _is_run(d)]
    if not runs:
        return None

    def key(d: Path) -> tuple[str, float]:
        started = ""
        try:
            started = str(json.loads((d / "run.json").read_text()).get("started") or "")
        except (OSError, json.JSONDecodeError):
            pass
        return (started, d.stat().st_mtime)

    return max(runs, key=key)


def reference_run() -> Path:
    """data/reference/: the small reference run shipped with the toolkit (or the newest in it)."""
    ref = project_root() / "data" / "reference"
    if _is_run(ref):
        return ref
    return latest_run(ref) or ref


def default_run_path(run_path: str | Path | None = None) -> Path:
    """``run_path`` if given, else the newest run in data/runs/, else data/reference/."""
    if run_path:
        return Path(run_path)
    return latest_run() or reference_run()


def subset_run(run: Run, cells: list[str]) -> Run:
    """The same run restricted to ``cells`` (their messages, stamps and rows)."""
    keep = set(cells)
    msgs = run.messages[run.messages["cell"].isin(keep)].reset_index(drop=True)
    stamps = run.stamps[run.stamps["msg_id"].isin(set(msgs["msg_id"]))].reset_index(drop=True)
    rows = run.cells[run.cells["cell"].isin(keep)]
    return Run(path=run.path, meta=run.meta, messages=msgs, stamps=stamps, cells=rows)
