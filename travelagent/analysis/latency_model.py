"""The conditions model: each path's p50 and p90 predicted from a scenario, fitted on some
measured cells and checked on others.

A message's time on a path is simulated, many times over, as the sum of what it meets:

- **Network legs** (``model.path_legs``): the link's configured one-way delay plus a draw of
  its jitter (clamped so nothing arrives before it was sent, as the links do), plus the leg's
  *overhead*: what the leg measured beyond its configured delay on the fit cells (the proxy's
  own cost, the kernel, the sender's write). A publish over a new connection (``http-new``)
  also pays ``setup_rtts`` round trips of its link.
- **Processing**: the sum of the message's in-process hops (parsing, the SQLite commits, the
  webhook's and the publish's handling), drawn from the fit cells of the same path. It is
  measured at light load, so the queueing of light load is in it.
- **The LLM**: time to first token (A = ``agent.start→llm.first``) and the rest of the answer
  (B = ``llm.first→llm.done``). For a profile measured in the fit cells, the (A, B) pairs
  measured there are drawn. For any other profile they are simulated from the profile's
  ranges (``agent.llm.profiles``) and the workload fitted from the fit cells: the share of
  messages that call a tool and the number of tokens per answer.
- **Streamed replies on the realtime path** publish a start frame and the chunks one
  publication at a time; chunks that arrive while a publication is in flight go out together
  in the next (``worker.turn``'s drain). The final frame waits for the drain. The model replays
  that queue for each simulated message with the answer's token times and the publication's
  round trip (one way with its set-up, the way back, and a per-publication service time fitted
  on the streamed fit cells), which gives both the wait for the drain and the first chunk's time.

Cells are split into *fit* and *held-out* cells before anything is fitted (``split``): cells of
scenarios an experiment marks ``held_out = true``, or without marks the last repetition. Only
fit cells enter ``fit``; ``model_rows`` says for every measured cell which it was.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from travelagent.agent.llm.profiles import PROFILES, get_profile
from travelagent.analysis.model import path_legs
from travelagent.runner.selfcheck import between_processes_only

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

# path name -> (arch, publish, streaming): every path of the note and the streamed variants
PATHS: dict[str, tuple[str, str, bool]] = {
    "gateway": ("gateway", "", False),
    "gateway-stream": ("gateway", "", True),
    "rt-new": ("realtime", "http-new", False),
    "rt-pooled": ("realtime", "http-pooled", False),
    "rt-ws": ("realtime", "ws-persistent", False),
    "rt-new-stream": ("realtime", "http-new", True),
    "rt-pooled-stream": ("realtime", "http-pooled", True),
    "rt-ws-stream": ("realtime", "ws-persistent", True),
    "hybrid": ("hybrid", "", False),
}
PUBLISH_LEG = "worker→realtime"
DRAIN_HOP = "agent.done→worker.publish"  # where a streamed reply's final frame waits
PRE_LLM = frozenset({"realtime.webhook", "agent.start"})  # processing before the LLM starts
SAMPLES = 2000
MAX_KEPT = 4000  # samples kept per fitted distribution (a committed fit stays small)


class ModelError(ValueError):
    """The model cannot answer: an unknown path or profile, or nothing fitted for a path."""


def path_name(arch: str, publish: str, streaming: bool) -> str:
    for name, (a, p, s) in PATHS.items():
        if a == arch and (p == publish or a != "realtime") and s == bool(streaming):
            return name
    return f"{arch}-{publish or 'none'}{'-stream' if streaming else ''}"


def _leg_key(leg: str, publish: str) -> str:
    return f"{leg}/{publish}" if leg == PUBLISH_LEG else leg


def _setup_ms(leg: str, publish: str, link: dict[str, Any]) -> float:
    if leg == PUBLISH_LEG and publish == "http-new":
        return float(link.get("setup_rtts") or 0) * 2 * float(link.get("delay_ms") or 0)
    return 0.0


def _links_of(cell: Any) -> dict[str, Any]:
    try:
        links = json.loads(cell.get("links") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return links if isinstance(links, dict) else {}


def _thin(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) > MAX_KEPT:
        v = rng.choice(v, MAX_KEPT, replace=False)
    return [round(float(x), 4) for x in v]


# -- the split ------------------------------------------------------------------------------


def _entry_of(cell: str, entries: list[str]) -> str:
    """The experiment scenario a cell belongs to: the longest entry name it starts with."""
    best = ""
    for e in entries:
        if (cell == e or cell.startswith(e + "-")) and len(e) > len(best):
            best = e
    return best


def split(run: Run, held_out: list[str] | None = None) -> tuple[list[str], list[str], str]:
    """(fit cells, held-out cells, the rule used). Cells that did not complete are in neither.
    ``held_out`` names the held-out cells explicitly."""
    cells = [str(c) for c in run.cells["cell"]] if "cell" in run.cells else []
    ok = set(run.ok()["cell"].astype(str))
    cells = [c for c in cells if c in ok]
    if held_out is not None:
        held = [c for c in cells if c in set(held_out)]
        rule = "cells named by the caller"
    else:
        held, rule = _held_by_experiment(run, cells)
    flagged = _flagged(run)
    fit_cells = [c for c in cells if c not in held and c not in flagged]
    if any(c in flagged for c in cells if c not in held):
        rule += "; cells the self-check flagged are never fitted on"
        if llm_only_cells(run, held):
            rule += (
                " (those flagged only for a link's or the clients' lateness give their "
                "model answer times, which no link can delay)"
            )
    return fit_cells, held, rule


def _held_by_experiment(run: Run, cells: list[str]) -> tuple[list[str], str]:
    """The cells the experiment file holds out, else the last repetition of each."""
    scen = (run.meta.get("experiment") or {}).get("scenarios") or []
    marked = [str(s.get("name")) for s in scen if isinstance(s, dict) and s.get("held_out")]
    if marked:
        names = [str(s.get("name")) for s in scen if isinstance(s, dict)]
        held = [c for c in cells if _entry_of(c, names) in marked]
        points = sorted({str(x.get("point")) for x in scen if isinstance(x, dict)
                         and x.get("held_out") and x.get("point")})  # fmt: skip
        rule = ("grid points marked held_out in the experiment file: " + ", ".join(points)
                if points else "scenarios marked held_out in the experiment file: "
                + ", ".join(marked))  # fmt: skip
    else:
        reps: dict[str, int] = {}
        if "repetition" in run.cells:
            reps = {str(c): int(r or 1) for c, r in zip(run.cells["cell"], run.cells["repetition"],
                                                          strict=False)}  # fmt: skip
        last = max(reps.values(), default=1)
        if last > 1:
            held = [c for c in cells if reps.get(c, 1) == last]
            rule = f"the last repetition (r{last}) of every configuration"
        else:
            held, rule = [], "none held out (one repetition and no marked scenarios)"
    return held, rule


def _flagged(run: Run) -> set[str]:
    if "flagged" not in run.cells:
        return set()
    pairs = zip(run.cells["cell"], run.cells["flagged"], strict=False)
    return {str(c) for c, f in pairs if f is True or (f == f and bool(f))}


def llm_only_cells(run: Run, held: list[str]) -> list[str]:
    """Unstreamed cells flagged only for delay between processes (a link's or the clients'
    lateness), never a held-out one: their messages' LLM times (agent.start -> llm.done, an
    answer taken whole inside the agent's process) join the fit's LLM tables; nothing else of
    them is fitted on. Without them a profile whose unstreamed cells were all flagged would
    borrow the streamed turns' times. A streamed turn's answer is not among them: it sends each
    chunk as it comes, so a late link downstream can hold its token loop back."""
    if "flags" not in run.cells:
        return []
    ok = set(run.ok()["cell"].astype(str))
    out = []
    for cell, flags, streamed in zip(
        run.cells["cell"], run.cells["flags"], run.cells["streaming"], strict=False
    ):
        name, text = str(cell), flags if isinstance(flags, str) else ""
        if streamed is True or (streamed == streamed and bool(streamed)):
            continue
        if name in ok and name not in set(held) and between_processes_only(text.split("; ")):
            out.append(name)
    return out


# -- the fit --------------------------------------------------------------------------------


@dataclass
class Fit:
    """What the model took from the fit cells; JSON round-trips (``save``/``load``)."""

    cells: list[str] = field(default_factory=list)
    llm_cells: list[str] = field(default_factory=list)  # flagged cells giving only LLM times
    overhead_ms: dict[str, float] = field(default_factory=dict)  # leg key -> ms beyond delay
    proc_ms: dict[str, list[list[float]]] = field(default_factory=dict)  # path -> [sum, pre]
    llm_ms: dict[str, list[list[float]]] = field(default_factory=dict)  # profile -> [A, B]
    publish_service_ms: dict[str, float] = field(default_factory=dict)  # streamed, per mode
    proc_first_ms: dict[str, list[list[float]]] = field(default_factory=dict)  # first messages
    # leg key -> round trips a user's first message pays on it (a pooled connection opened)
    cold_rtts: dict[str, float] = field(default_factory=dict)
    # path -> per fit message [proc, pre, each leg's residual in path_legs order]: what one
    # message met beyond the configured delays, kept together (a stalled event loop slows the
    # legs and the in-process hops of the same message); a user's first messages apart
    joint_ms: dict[str, list[list[float]]] = field(default_factory=dict)
    joint_first_ms: dict[str, list[list[float]]] = field(default_factory=dict)
    # profile -> "user:seq" -> [A, B]: the same question's LLM times (paired cells)
    llm_by_key: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # profile -> [dA, dB] per fit message: its LLM times less its question's median (scaled by
    # sqrt(k / (k - 1)) for a question measured k times), the spread a repeat of the same
    # question shows (the loop, timers); convolved with the question's own times
    llm_dev_ms: dict[str, list[list[float]]] = field(default_factory=dict)
    tool_share: float = 0.0
    tokens: list[float] = field(default_factory=list)  # tokens per answer
    reply_bytes: float = 0.0
    source: str = ""  # the run fitted on
    split_rule: str = ""
    # path (or "all") -> [worst |error| %, held-out cells, which cells]: the validated band
    bands: dict[str, list[Any]] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), separators=(",", ":")))
        return p

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{path}: not a readable model fit: {err}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{path}: not a model fit (expected a JSON object)")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def message_parts(run: Run, cells: list[str] | None = None) -> pd.DataFrame:
    """Per ok message with stamps: A, B, processing (without a streamed reply's drain wait),
    the drain hop, and each network leg's duration beside its configured delay and set-up."""
    hops = run.hops
    if cells is not None:
        hops = hops[hops["cell"].isin(cells)]
    if hops.empty:
        return pd.DataFrame()
    info = run.cells.set_index("cell")
    h = hops[["msg_id", "cell", "arch", "publish", "streaming", "from_name", "to_name", "hop",
              "network", "category", "dur_ms"]].copy()  # fmt: skip
    h["name"] = h["from_name"].astype(str) + "→" + h["to_name"].astype(str)
    a = h[h["name"] == "agent.start→llm.first"].groupby("msg_id")["dur_ms"].sum()
    b = h[h["name"] == "llm.first→llm.done"].groupby("msg_id")["dur_ms"].sum()
    drain_mask = (h["name"] == DRAIN_HOP) & h["streaming"].astype(bool) & (h["arch"] == "realtime")
    proc_h = h[(h["category"] == "processing") & ~drain_mask]
    proc = proc_h.groupby("msg_id")["dur_ms"].sum()
    pre = proc_h[proc_h["to_name"].isin(PRE_LLM)].groupby("msg_id")["dur_ms"].sum()
    drain = h[drain_mask].groupby("msg_id")["dur_ms"].sum()
    meta = h.drop_duplicates("msg_id").set_index("msg_id")[["cell", "arch", "publish",
                                                            "streaming"]]  # fmt: skip
    out = meta.assign(A=a, B=b, proc=proc, pre=pre, drain=drain)
    out["proc"] = out["proc"].fillna(0.0)
    out["pre"] = out["pre"].fillna(0.0)
    out["drain"] = out["drain"].fillna(0.0)
    out["profile"] = [str(info.loc[c, "profile"]) if c in info.index else "" for c in out["cell"]]
    net = h[h["network"].astype(bool)]
    legs = net.pivot_table(index="msg_id", columns="hop", values="dur_ms", aggfunc="first")
    out = out.join(legs.add_prefix("leg:"))
    keys = run.messages.set_index("msg_id")
    for col in ("user_key", "seq"):
        out[col] = keys[col].reindex(out.index) if col in keys else pd.NA
    out["first"] = out["seq"].astype("Float64").fillna(1).eq(0).astype(bool)
    return out.reset_index()


def fit(run: Run, cells: list[str], *, seed: int = 0, llm_cells: list[str] | None = None) -> Fit:
    """Fit the model on ``cells`` of ``run`` only (never pass a held-out cell); ``llm_cells``
    (``llm_only_cells``) add their LLM times and nothing else."""
    rng = np.random.default_rng(seed)
    parts = message_parts(run, cells)
    extra = sorted(set(llm_cells or ()) - set(cells))
    f = Fit(cells=sorted(cells), source=run.run_id, llm_cells=extra)
    if parts.empty:
        return f
    llm_parts = pd.concat([parts, message_parts(run, extra)]) if extra else parts
    info = run.cells.set_index("cell")
    # leg overheads: measured minus configured delay and set-up, median over fit messages
    over: dict[str, list[float]] = {}
    for cell, g in parts.groupby("cell"):
        row = info.loc[cell]
        links = _links_of(row)
        publish = str(row.get("publish") or "")
        for leg, link_name in path_legs(str(row["arch"])):
            col = f"leg:{leg}"
            if col not in g or link_name not in links:
                continue
            link = links[link_name]
            base = float(link.get("delay_ms") or 0) + _setup_ms(leg, publish, link)
            vals = g[col].astype(float).dropna() - base
            over.setdefault(_leg_key(leg, publish), []).extend(vals.tolist())
    f.overhead_ms = {k: float(np.median(v)) for k, v in over.items() if v}
    for (arch, pub, streaming), g in parts.groupby(["arch", "publish", "streaming"]):
        name = path_name(str(arch), str(pub), bool(streaming))
        for target, sub in ((f.proc_ms, g[~g["first"]]), (f.proc_first_ms, g[g["first"]])):
            pp = sub[["proc", "pre"]].astype(float).to_numpy()
            if len(pp) > MAX_KEPT:
                pp = pp[rng.choice(len(pp), MAX_KEPT, replace=False)]
            if len(pp):
                target[name] = [[round(float(x), 4), round(float(y), 4)] for x, y in pp]
        if name not in f.proc_ms and name in f.proc_first_ms:
            f.proc_ms[name] = f.proc_first_ms[name]
    f.cold_rtts = _cold_rtts(run, parts)
    f.joint_ms, f.joint_first_ms = _joint_residuals(run, parts, f.cold_rtts, rng)
    # each profile's LLM times, both streaming modes pooled, and each mode's own
    keyed = llm_parts.dropna(subset=["user_key", "seq", "A", "B"])
    for key, g in _by_profile_and_mode(keyed):
        f.llm_dev_ms[key] = _llm_deviations(g, rng)
        by = g.groupby(["user_key", "seq"])[["A", "B"]].median().reset_index()
        f.llm_by_key[key] = {
            f"{int(k)}:{int(q)}": [round(float(x), 4), round(float(y), 4)]
            for k, q, x, y in by[["user_key", "seq", "A", "B"]].itertuples(index=False)
        }
    for key, g in _by_profile_and_mode(llm_parts):
        ab = g[["A", "B"]].astype(float).dropna().to_numpy()
        if len(ab) > MAX_KEPT:
            ab = ab[rng.choice(len(ab), MAX_KEPT, replace=False)]
        f.llm_ms[key] = [[round(float(x), 4), round(float(y), 4)] for x, y in ab]
    f.tool_share, f.tokens = _workload(parts, rng)
    m = run.ok()
    m = m[m["cell"].isin(cells)]
    f.reply_bytes = float(m["bytes"].astype(float).median()) if len(m) else 0.0
    _fit_publish_service(run, f, parts, seed=seed)
    return f


def _cold_rtts(run: Run, parts: pd.DataFrame) -> dict[str, float]:
    """Per leg: the round trips a user's first message pays beyond a later one's (a pooled
    connection being opened), from fit cells whose link is long enough to see it (>= 5 ms
    one way), rounded to the nearest half round trip."""
    info = run.cells.set_index("cell")
    extra: dict[str, list[float]] = {}
    for cell, g in parts.groupby("cell"):
        row = info.loc[cell]
        links = _links_of(row)
        publish = str(row.get("publish") or "")
        firsts, later = g[g["first"]], g[~g["first"]]
        if len(firsts) < 3 or len(later) < 3:
            continue
        for leg, link_name in path_legs(str(row["arch"])):
            col = f"leg:{leg}"
            d = float((links.get(link_name) or {}).get("delay_ms") or 0)
            if col not in g or d < 5:
                continue
            diff = float(firsts[col].median() - later[col].median())
            extra.setdefault(_leg_key(leg, publish), []).append(diff / (2 * d))
    return {k: round(2 * max(0.0, float(np.median(v)))) / 2 for k, v in extra.items() if v}


def _llm_deviations(g: pd.DataFrame, rng: np.random.Generator) -> list[list[float]]:
    """Each fit message's (A, B) less the median of its question's (same user key and seq)
    measurements, from questions measured at least twice; a deviation from a median of k
    values is scaled by sqrt(k / (k - 1)) so its spread is that of one repeat."""
    key = g["user_key"].astype(float).astype(str) + ":" + g["seq"].astype(float).astype(str)
    ab = g[["A", "B"]].astype(float)
    k = key.map(key.value_counts()).to_numpy(dtype=float)
    keep = k >= 2
    if not keep.any():
        return []
    med = ab.groupby(key.to_numpy()).transform("median")
    scale = np.sqrt(k[keep] / (k[keep] - 1))[:, None]
    dev = (ab.to_numpy() - med.to_numpy())[keep] * scale
    if len(dev) > MAX_KEPT:
        dev = dev[rng.choice(len(dev), MAX_KEPT, replace=False)]
    return [[round(float(x), 4), round(float(y), 4)] for x, y in dev]


def _jitter_mean(link: dict[str, Any]) -> float:
    """The mean a link's jitter adds to its delay (pareto jitter is one-sided, mean its scale;
    symmetric jitter adds about nothing)."""
    return float(link.get("jitter_ms") or 0.0) if str(link.get("jitter")) == "pareto" else 0.0


def _joint_residuals(
    run: Run, parts: pd.DataFrame, cold_rtts: dict[str, float], rng: np.random.Generator
) -> tuple[dict[str, list[list[float]]], dict[str, list[list[float]]]]:
    """Per path, later and first messages: each fit message's [proc, pre, residual of each
    leg], the residual being the leg's measured time less its configured delay, set-up, the
    mean of its jitter and (first messages) the cold connection's round trips. Drawn whole
    in ``simulate``, so what one message meets stays together instead of being summed from
    independent medians."""
    info = run.cells.set_index("cell")
    later: dict[str, list[np.ndarray]] = {}
    firsts: dict[str, list[np.ndarray]] = {}
    for cell, g in parts.groupby("cell"):
        row = info.loc[cell]
        links = _links_of(row)
        arch, publish = str(row["arch"]), str(row.get("publish") or "")
        path = path_name(arch, publish, bool(row["streaming"]))
        cols = [g["proc"].astype(float).to_numpy(), g["pre"].astype(float).to_numpy()]
        for leg, link_name in path_legs(arch):
            col = f"leg:{leg}"
            if col not in g or link_name not in links:
                break
            link = links[link_name]
            d = float(link.get("delay_ms") or 0.0)
            cold = cold_rtts.get(_leg_key(leg, publish), 0.0) * 2 * d
            base = d + _setup_ms(leg, publish, link) + _jitter_mean(link)
            cols.append(g[col].astype(float).to_numpy() - base - np.where(g["first"], cold, 0.0))
        else:
            m = np.column_stack(cols)
            for target, mask in ((later, ~g["first"].to_numpy()), (firsts, g["first"].to_numpy())):
                rows = m[mask]
                rows = rows[np.isfinite(rows).all(axis=1)]
                if len(rows):
                    target.setdefault(path, []).append(rows)
    out: list[dict[str, list[list[float]]]] = []
    for pool in (later, firsts):
        done = {}
        for path, chunks in pool.items():
            arr = np.vstack(chunks)
            if len(arr) > MAX_KEPT:
                arr = arr[rng.choice(len(arr), MAX_KEPT, replace=False)]
            done[path] = [[round(float(x), 4) for x in r] for r in arr]
        out.append(done)
    return out[0], out[1]


def _workload(parts: pd.DataFrame, rng: np.random.Generator) -> tuple[float, list[float]]:
    """The share of answers that call a tool, and tokens per answer, from the LLM stamps of
    profiles with a token interval: the simulated model sleeps to each token's absolute due
    time, so B is the sum of the drawn intervals and B / mean interval + 1 counts the tokens."""
    shares, tokens = [], []
    for profile, g in parts.groupby("profile"):
        p = PROFILES.get(str(profile))
        if p is None:
            continue
        mean_int = sum(p.token_interval_ms) / 2
        mean_tool = sum(p.tool_call_ms) / 2
        a = g["A"].astype(float).dropna()
        b = g["B"].astype(float).dropna()
        if mean_tool > 0 and len(a):
            shares.append(((a.mean() - sum(p.ttft_ms) / 2) / mean_tool, len(a)))
        if mean_int > 0 and len(b):
            tokens.extend((b / mean_int + 1).tolist())
    share = (
        float(np.clip(sum(s * n for s, n in shares) / sum(n for _, n in shares), 0, 1))
        if shares
        else 0.0
    )
    return share, _thin(np.array(tokens), rng)


# -- the simulation -------------------------------------------------------------------------


def _jitter(kind: str, scale: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if scale <= 0:
        return np.zeros(n)
    if kind == "uniform":
        return rng.uniform(-scale, scale, n)
    if kind == "pareto":
        alpha = 2.5  # link.schedule.PARETO_ALPHA: non-negative, mean ``scale``
        return (rng.pareto(alpha, n)) * (alpha - 1.0) * scale
    return rng.normal(0.0, scale, n)


def llm_mode_key(profile: str, stream: bool) -> str:
    """The key of a profile's LLM times measured in one streaming mode. An unstreamed turn takes
    its reply whole (one wake-up), a streamed one token by token (a loop pass and a send each):
    the same question's agent.start -> llm.done differs between them by the streaming's own
    work (about 6 ms for ``instant``), so each mode is predicted from its own measurements
    where the fit has them."""
    return f"{profile}@{'stream' if stream else 'whole'}"


def _by_mode(table: dict[str, Any], profile: str, stream: bool | None) -> Any:
    """The streaming mode's entry where the fit measured it, else the profile's (both modes)."""
    if stream is not None:
        own = table.get(llm_mode_key(profile, stream))
        if own:
            return own
    return table.get(profile)


def _llm_draws(
    f: Fit, profile: str, n: int, rng: np.random.Generator, stream: bool | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(A, B, where they came from) for ``n`` simulated answers."""
    measured = _by_mode(f.llm_ms, profile, stream)
    if measured:
        ab = np.asarray(measured, dtype=float)
        idx = rng.integers(0, len(ab), n)
        return ab[idx, 0], ab[idx, 1], "measured in the fit cells"
    p = get_profile(profile)
    a = rng.uniform(*p.ttft_ms, n)
    tool = rng.random(n) < f.tool_share
    a = a + np.where(tool, rng.uniform(*p.tool_call_ms, n), 0.0)
    toks = np.asarray(f.tokens, dtype=float) if f.tokens else np.array([60.0])
    k = np.maximum(1, np.round(rng.choice(toks, n))).astype(int) - 1
    lo, hi = p.token_interval_ms
    # the sum of k uniform intervals: mean k(lo+hi)/2, variance k(hi-lo)^2/12
    b = k * (lo + hi) / 2 + np.sqrt(k * (hi - lo) ** 2 / 12) * rng.standard_normal(n)
    # what the fit cells show on top of the profile (timer overshoot, the loop), per answer
    base = _llm_residual(f)
    return a + base[0], np.maximum(0.0, b) + base[1], "simulated from the profile"


def _by_profile_and_mode(parts: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The fit messages per profile (both streaming modes) and per profile and mode."""
    out = [(str(p), g) for p, g in parts.groupby("profile")]
    if "streaming" in parts:
        out += [(llm_mode_key(str(p), bool(s)), g)
                for (p, s), g in parts.groupby(["profile", "streaming"])]  # fmt: skip
    return out


def _llm_residual(f: Fit) -> tuple[float, float]:
    """Median A and B measured beyond each measured profile's expected values."""
    ra, rb = [], []
    for name, ab in f.llm_ms.items():
        p = PROFILES.get(name)
        if p is None or not ab:
            continue
        arr = np.asarray(ab, dtype=float)
        exp_a = sum(p.ttft_ms) / 2 + f.tool_share * sum(p.tool_call_ms) / 2
        ra.append(float(np.mean(arr[:, 0])) - exp_a)
        if sum(p.token_interval_ms) == 0:
            rb.append(float(np.mean(arr[:, 1])))
    return (float(np.median(ra)) if ra else 0.0, float(np.median(rb)) if rb else 0.0)


def _proc(
    f: Fit, path: str, n: int, rng: np.random.Generator, *, first: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(processing, the part of it before the LLM) for ``n`` messages (a user's first ones:
    the agent is created)."""
    samples = (f.proc_first_ms if first else f.proc_ms).get(path)
    if not samples:  # the nearest fitted path: same arch and publish mode, then same arch
        arch, publish, _ = PATHS.get(path, ("", "", False))
        near = [k for k, v in f.proc_ms.items() if v and PATHS.get(k, ("",))[0] == arch]
        near.sort(key=lambda k: PATHS[k][1] != publish)
        if not near:
            raise ModelError(f"no fit cell measured the {arch or path} path's processing")
        samples = f.proc_ms[near[0]]
    arr = np.asarray(samples, dtype=float).reshape(-1, 2)
    idx = rng.integers(0, len(arr), n)
    return arr[idx, 0], arr[idx, 1]


def _joint(
    f: Fit, path: str, cold: np.ndarray, rng: np.random.Generator, n_legs: int
) -> np.ndarray | None:
    """Per simulated message, one fit message's [proc, pre, leg residuals] of the same path
    (a first message's from the first messages where the fit has them); None when the fit
    has no joint samples of this path (an older fit, or a path no fit cell ran)."""
    later = f.joint_ms.get(path)
    if not later:
        return None
    arr = np.asarray(later, dtype=float).reshape(len(later), -1)
    if arr.shape[1] != 2 + n_legs:
        return None
    out = arr[rng.integers(0, len(arr), len(cold))]
    firsts = f.joint_first_ms.get(path)
    if firsts and cold.any():
        fa = np.asarray(firsts, dtype=float).reshape(len(firsts), -1)
        out[cold] = fa[rng.integers(0, len(fa), int(cold.sum()))]
    return out


def _drain(
    a: np.ndarray, b: np.ndarray, tokens: np.ndarray, r: np.ndarray, done: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per answer: (wait for the drain after agent.done, start of the first chunk publication),
    both in ms after agent.start. The start frame goes at 0; token i is due at
    a + b * i / (tokens - 1); a publication takes r and carries every token due by its start."""
    n = len(a)
    k = np.maximum(1, np.asarray(tokens, dtype=int))
    kmax = int(k.max()) if n else 1
    idx = np.arange(kmax)
    steps = np.maximum(k - 1, 1)
    due = a[:, None] + b[:, None] * idx[None, :] / steps[:, None]
    due[idx[None, :] >= k[:, None]] = np.inf
    rows = np.arange(n)
    t_free = r.astype(float).copy()  # the start frame's publication
    sent = np.zeros(n, dtype=int)
    first = np.full(n, np.nan)
    active = sent < k
    while active.any():  # one round per publication, all answers at once
        t = np.maximum(t_free, due[rows, np.minimum(sent, kmax - 1)])
        first = np.where(active & np.isnan(first), t, first)
        sent = np.where(active, (due <= t[:, None]).sum(axis=1), sent)
        t_free = np.where(active, t + r, t_free)
        active = sent < k
    return np.maximum(0.0, t_free - done), first


@dataclass
class Workload:
    """Given messages: which are a user's first, and their LLM times where known (NaN else)."""

    first: np.ndarray
    a: np.ndarray | None = None
    b: np.ndarray | None = None


@dataclass
class Prediction:
    path: str
    p50_ms: float
    p90_ms: float
    first_p50_ms: float
    first_p90_ms: float
    parts: dict[str, float]
    llm_source: str

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "p50_ms": self.p50_ms, "p90_ms": self.p90_ms}
        out.update(first_p50_ms=self.first_p50_ms, first_p90_ms=self.first_p90_ms)
        out.update({f"{k}_ms": v for k, v in self.parts.items()}, llm_source=self.llm_source)
        return out


def simulate(
    f: Fit,
    links: dict[str, Any],
    profile: str,
    path: str,
    *,
    n: int = SAMPLES,
    seed: int = 0,
    publish_service_ms: float | None = None,
    workload: Workload | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float], str]:
    """``n`` simulated messages: (service ms, first content ms, median parts, LLM source)
    (``simulate_components`` also gives each component per message)."""
    total, first, parts, src, _ = simulate_components(
        f, links, profile, path, n=n, seed=seed, publish_service_ms=publish_service_ms,
        workload=workload,
    )  # fmt: skip
    return total, first, parts, src


def simulate_components(
    f: Fit,
    links: dict[str, Any],
    profile: str,
    path: str,
    *,
    n: int = SAMPLES,
    seed: int = 0,
    publish_service_ms: float | None = None,
    workload: Workload | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float], str, dict[str, np.ndarray]]:
    """As ``simulate``, plus each component per simulated message (every network leg by its
    hop name, ``proc``, ``llm`` = A + B, ``drain``), named as ``component_medians`` names the
    measured ones, so a cell's error can be traced to the hop that is off.

    Without ``workload`` the messages are a steady state (no connection opened, the profile's
    pooled LLM times); with it, the given messages: their own LLM times where the fit measured
    the same question under the same profile, and a user's first message opening the pooled
    connections (``Fit.cold_rtts``) and creating the agent (``Fit.proc_first_ms``)."""
    if path not in PATHS:
        raise ModelError(f"unknown path {path!r}; paths: {', '.join(PATHS)}")
    arch, publish, stream = PATHS[path]
    rng = np.random.default_rng(seed)
    if workload is not None:
        n = len(workload.first)
    cold = workload.first if workload is not None else np.zeros(n, dtype=bool)
    legs = path_legs(arch)
    leg_t: dict[str, np.ndarray] = {}
    delay_sum = setup_sum = 0.0
    for i, (leg, link_name) in enumerate(legs):
        link = links.get(link_name) or {}
        d = float(link.get("delay_ms") or 0.0)
        t = np.maximum(0.0, d + _jitter(str(link.get("jitter") or "normal"),
                                        float(link.get("jitter_ms") or 0.0), n, rng))  # fmt: skip
        setup = _setup_ms(leg, publish, link)
        kbps = float(link.get("bandwidth_kbps") or 0)
        transfer = f.reply_bytes * 8 / kbps if i == len(legs) - 1 and kbps > 0 else 0.0
        leg_t[leg] = t + setup + transfer + f.overhead_ms.get(_leg_key(leg, publish), 0.0)
        rtts = f.cold_rtts.get(_leg_key(leg, publish), 0.0)
        if rtts > 0:
            leg_t[leg] = leg_t[leg] + np.where(cold, rtts * 2 * d, 0.0)
        delay_sum += d
        setup_sum += setup
    a, b, llm_source = _llm_draws(f, profile, n, rng, stream)
    joint = _joint(f, path, cold, rng, len(legs))
    if joint is not None:  # one measured message's residuals per simulated message
        proc, pre = joint[:, 0], joint[:, 1]
        for i, (leg, _) in enumerate(legs):
            over = f.overhead_ms.get(_leg_key(leg, publish), 0.0)
            leg_t[leg] = leg_t[leg] - over + joint[:, 2 + i]
    else:
        proc, pre = _proc(f, path, n, rng)
    if workload is not None:
        if workload.a is not None and workload.b is not None:
            known = np.isfinite(workload.a) & np.isfinite(workload.b)
            dev = _by_mode(f.llm_dev_ms, profile, stream)
            ka: np.ndarray = workload.a
            kb: np.ndarray = workload.b
            if dev:  # the question's own times, convolved with the spread of a repeat
                rep = np.asarray(dev, dtype=float).reshape(-1, 2)[rng.integers(0, len(dev), n)]
                ka, kb = np.maximum(0.0, ka + rep[:, 0]), np.maximum(0.0, kb + rep[:, 1])
            a, b = np.where(known, ka, a), np.where(known, kb, b)
            if known.any():
                llm_source = f"the same questions measured in the fit cells ({known.mean():.0%})"
        if joint is None and cold.any() and f.proc_first_ms.get(path):
            pf, pref = _proc(f, path, n, rng, first=True)
            proc, pre = np.where(cold, pf, proc), np.where(cold, pref, pre)
    network = np.sum(list(leg_t.values()), axis=0)
    total = network + proc + a + b
    # legs up to the worker, and the way out from the worker
    out_legs = [leg for leg, _ in legs[len(legs) // 2 :]]
    way_out = np.sum([leg_t[leg] for leg in out_legs], axis=0)
    way_in = network - way_out
    drain_wait = np.zeros(n)
    if stream and arch == "realtime":
        wr = links.get("worker_realtime") or {}
        service = (
            publish_service_ms
            if publish_service_ms is not None
            else f.publish_service_ms.get(publish, 0.0)
        )
        back = float(wr.get("delay_ms") or 0.0) + max(
            0.0, f.overhead_ms.get("realtime→worker", 0.0)
        )
        r = leg_t[PUBLISH_LEG] + back + service
        toks = np.asarray(f.tokens, dtype=float) if f.tokens else np.array([60.0])
        k = np.maximum(1, np.round(rng.choice(toks, n)))
        # the final frame waits for the drain from agent.done (after the commit, in proc - pre)
        drain_wait, first_pub = _drain(a, b, k, r, a + b + (proc - pre))
        total = total + drain_wait
        first = way_in + pre + first_pub + way_out
    elif stream:
        first = way_in + pre + a + way_out
    else:
        first = total
    parts = {
        "network": float(np.median(network)),
        "delay": delay_sum,
        "setup": setup_sum,
        "proc": float(np.median(proc)),
        "llm": float(np.median(a + b)),
        "drain": float(np.median(drain_wait)),
    }
    comps = {**leg_t, "proc": proc, "llm": a + b, "drain": drain_wait}
    return total, first, parts, llm_source, comps


def cell_workload(
    f: Fit, messages: pd.DataFrame, profile: str, *, n: int = SAMPLES, stream: bool | None = None
) -> Workload:
    """The messages a measured cell sent, repeated to about ``n``: first or not, and their LLM
    times where the fit measured the same question under the same profile (in the same
    streaming mode where it has it)."""
    keys = _by_mode(f.llm_by_key, profile, stream) or {}
    seq = messages["seq"].astype("Float64").fillna(1).to_numpy(dtype=float)
    user = messages["user_key"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    none = [np.nan, np.nan]
    pairs = zip(user, seq, strict=True)
    ab = np.array([keys.get(f"{int(u)}:{int(q)}", none) if u == u else none for u, q in pairs],
                  dtype=float)  # fmt: skip
    reps = max(1, -(-n // max(1, len(seq))))
    ab = ab.reshape(-1, 2)
    return Workload(np.tile(seq == 0, reps), np.tile(ab[:, 0], reps), np.tile(ab[:, 1], reps))


def predict(
    f: Fit, links: dict[str, Any], profile: str, path: str, *, n: int = SAMPLES, seed: int = 0,
    workload: Workload | None = None,
) -> Prediction:  # fmt: skip
    total, first, parts, src = simulate(f, links, profile, path, n=n, seed=seed,
                                        workload=workload)  # fmt: skip
    return Prediction(
        path,
        float(np.percentile(total, 50)),
        float(np.percentile(total, 90)),
        float(np.percentile(first, 50)),
        float(np.percentile(first, 90)),
        parts,
        src,
    )


def _fit_publish_service(run: Run, f: Fit, parts: pd.DataFrame, *, seed: int) -> None:
    """Per publish mode with streamed fit cells: the per-publication service time (0-200 ms),
    the median over those cells of each cell's own estimate (``_service_for``): the service
    time at which the cell, simulated with the messages it sent (first messages, the same
    questions' LLM times) as ``model_rows`` predicts it, waits for its drain as long as it
    measured at the median. Matching the median wait over all the cells at once instead let
    the two cells whose waits straddled that median set the time for all (a slow-model cell
    whose own estimate was 15 ms made it 4.1 ms where six of eight cells estimated 0-2 ms)."""
    info = run.cells.set_index("cell")
    ok = run.ok()
    s = parts[parts["streaming"].astype(bool) & (parts["arch"] == "realtime")]
    for publish, g in s.groupby("publish"):
        estimates = []
        for key, m in g.groupby("cell"):
            cell = str(key)
            target = float(m["drain"].median())
            work = {
                cell: cell_workload(
                    f, ok[ok["cell"] == cell], str(info.loc[cell, "profile"]), n=400, stream=True
                )
            }
            estimates.append(_service_for(f, info, work, str(publish), target, seed))
        f.publish_service_ms[str(publish)] = round(float(np.median(estimates)), 3)


def _service_for(
    f: Fit, info: pd.DataFrame, work: dict[str, Workload], publish: str, target: float,
    seed: int,
) -> float:  # fmt: skip
    """The service time (0-200 ms, to 0.05 ms) at which the simulated median drain wait of
    the cells in ``work`` is ``target`` (bisection: the wait grows with the service time)."""
    if _drain_only(f, info, work, publish, 0.0, seed) >= target:
        return 0.0
    lo, hi = 0.0, 200.0
    for _ in range(12):  # 200 ms / 2^12: 0.05 ms
        mid = (lo + hi) / 2
        if _drain_only(f, info, work, publish, mid, seed) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _drain_only(
    f: Fit, info: pd.DataFrame, work: dict[str, Workload], publish: str, service: float,
    seed: int,
) -> float:  # fmt: skip
    """Median over cells of each cell's median simulated drain wait at a given
    per-publication service time."""
    waits = []
    path = path_name("realtime", publish, True)
    for c, w in work.items():
        row = info.loc[c]
        *_, comps = simulate_components(f, _links_of(row), str(row["profile"]), path, seed=seed,
                                        publish_service_ms=service, workload=w)  # fmt: skip
        waits.append(float(np.median(comps["drain"])))
    return float(np.median(waits)) if waits else 0.0


# -- against the run ------------------------------------------------------------------------


def model_rows(
    run: Run, *, seed: int = 0, held_out: list[str] | None = None
) -> tuple[pd.DataFrame, Fit, str]:
    """One row per measured cell: held out or fitted, measured and predicted p50/p90 and first
    content, the error in % of the measured value; with the fit and the split's rule."""
    rows, f, rule, _ = model_rows_with_components(run, seed=seed, held_out=held_out)
    return rows, f, rule


def model_rows_with_components(
    run: Run, *, seed: int = 0, held_out: list[str] | None = None
) -> tuple[pd.DataFrame, Fit, str, pd.DataFrame]:
    """``model_rows`` and, per cell and component (each network leg, ``proc``, ``llm``,
    ``drain``), the measured median beside the model's for the same messages: where a cell's
    error comes from."""
    fit_cells, held, rule = split(run, held_out)
    flagged = _flagged(run)
    f = fit(run, fit_cells, seed=seed, llm_cells=llm_only_cells(run, held))
    ok = run.ok()
    measured_comps = component_medians(message_parts(run))
    rows, comp_rows = [], []
    for _, cell in run.cells.iterrows():
        name = str(cell["cell"])
        m = ok[ok["cell"] == name]
        links = _links_of(cell)
        if m.empty or not links:
            continue
        path = path_name(str(cell["arch"]), str(cell.get("publish") or ""), bool(cell["streaming"]))
        try:
            total, first_t, parts, src, comps = simulate_components(
                f, links, str(cell["profile"]), path, seed=seed,
                workload=cell_workload(f, m, str(cell["profile"]),
                                       stream=bool(cell["streaming"])),
            )  # fmt: skip
        except (ModelError, ValueError) as err:
            rows.append({"cell": name, "held_out": name in held, "path": path, "note": str(err)})
            continue
        # the measured p50 is the sample median of the cell's n messages: predict the same
        # statistic, over replays of those messages (of a small cell with a gap between its
        # questions' LLM times it can sit far from the population's p50)
        k = len(m)
        p = Prediction(path, sample_quantile(total, k, 0.5), sample_quantile(total, k, 0.9),
                       sample_quantile(first_t, k, 0.5), sample_quantile(first_t, k, 0.9),
                       parts, src)  # fmt: skip
        service = m["service_ms"].astype(float)
        first = (m["first_ns"].astype("float64") - m["send_ns"].astype("float64")) / 1e6
        mp50, mp90 = float(service.median()), float(service.quantile(0.9))
        lo, hi = median_ci(service.to_numpy())
        measured = measured_comps.get(name, {})
        off, off_ms = "", math.nan
        for comp, arr in comps.items():
            if comp not in measured:
                continue
            pm = float(np.median(arr))
            comp_rows.append({"cell": name, "component": comp,
                              "measured_median_ms": measured[comp], "predicted_median_ms": pm,
                              "diff_ms": pm - measured[comp]})  # fmt: skip
            if not off or abs(pm - measured[comp]) > abs(off_ms):
                off, off_ms = comp, pm - measured[comp]
        rows.append(
            {
                "cell": name,
                "held_out": name in held,
                "flagged": name in flagged,
                "measured_p50_ms": mp50,
                "predicted_p50_ms": p.p50_ms,
                "error_pct": 100 * (p.p50_ms - mp50) / mp50,
                "predicted_population_p50_ms": float(np.percentile(total, 50)),
                "measured_p50_ci_low_ms": lo,
                "measured_p50_ci_high_ms": hi,
                "within_ci": bool(lo <= p.p50_ms <= hi),
                "ci_half_width_pct": 100 * (hi - lo) / 2 / mp50,
                "most_off_component": off,
                "most_off_ms": off_ms,
                "measured_p90_ms": mp90,
                "predicted_p90_ms": p.p90_ms,
                "error_p90_pct": 100 * (p.p90_ms - mp90) / mp90,
                "measured_first_p50_ms": float(first.median()),
                "predicted_first_p50_ms": p.first_p50_ms,
                "path": path,
                "arch": cell["arch"],
                "publish": cell.get("publish") or "",
                "streaming": bool(cell["streaming"]),
                "profile": cell["profile"],
                "n": len(m),
                **{f"{k}_ms": v for k, v in p.parts.items()},
                "llm_source": p.llm_source,
            }
        )
    out = pd.DataFrame(rows)
    f.split_rule = rule
    if len(out) and "error_pct" in out:
        for one in [*PATHS, None]:
            pct, n_cells, which = error_band(out, one)
            if n_cells and (one is None or which.startswith(f"held-out {one} ")):
                f.bands[one or "all"] = [round(pct, 3), n_cells, which]
    return out, f, rule, pd.DataFrame(comp_rows)


def sample_quantile(values: np.ndarray, n: int, q: float) -> float:
    """The median over replays of the ``q`` quantile of ``n`` values (as pandas computes a
    cell's measured quantile, interpolating), ``values`` being whole replays of ``n``
    messages one after the other (``cell_workload``'s order)."""
    v = np.asarray(values, dtype=float)
    reps = len(v) // n if n > 0 else 0
    if reps < 1:
        return float(np.percentile(v, 100 * q))
    return float(np.median(np.quantile(v[: reps * n].reshape(reps, n), q, axis=1)))


def component_medians(parts: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per cell: the measured median of each component ``simulate_components`` models (each
    network leg, ``proc``, ``llm`` = A + B, ``drain``)."""
    if parts.empty:
        return {}
    p = parts.assign(llm=parts["A"].astype(float) + parts["B"].astype(float))
    cols = ["proc", "llm", "drain"] + [c for c in p.columns if str(c).startswith("leg:")]
    med = p.groupby("cell")[cols].median()
    med.columns = [c.removeprefix("leg:") for c in med.columns]
    return {str(c): {str(k): float(v) for k, v in row.items() if v == v}
            for c, row in med.iterrows()}  # fmt: skip


def median_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median: the order statistics x(l) and x(u) with
    P(x(l) <= median < x(u)) >= ``level`` under Binomial(n, 1/2) (the widest, min to max,
    when n is too small to reach the level). Messages of one user are not independent (a
    first message is slower), so this is the interval of a sample of independent messages."""
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    # exact: summed as Python integers (as int64, the binomial coefficients overflowed from
    # n = 62 and the interval collapsed to the middle pair of a large cell)
    total = 2**n
    cdf = [c / total for c in itertools.accumulate(math.comb(n, k) for k in range(n + 1))]
    # the largest l (1-based) with P(Bin < l) <= (1 - level) / 2; u = n + 1 - l by symmetry
    alpha = (1 - level) / 2
    ok = [k for k in range(1, n // 2 + 1) if cdf[k - 1] <= alpha]
    lo_rank = max(ok) if ok else 1
    return float(x[lo_rank - 1]), float(x[n - lo_rank])


def error_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Median and worst |error_pct| of the p50, on fitted and on held-out cells, per path and
    over all."""
    if rows.empty or "error_pct" not in rows:
        return pd.DataFrame()
    r = rows.dropna(subset=["error_pct"]).assign(abs_err=lambda d: d["error_pct"].abs())
    if "flagged" in r:
        r = r.assign(kind=np.where(r["flagged"].astype(bool), "flagged by the self-check",
                                   np.where(r["held_out"], "held-out", "fitted")))  # fmt: skip
    else:
        r = r.assign(kind=np.where(r["held_out"], "held-out", "fitted"))
    out = []
    for held, g in r.groupby("kind", sort=False):
        for path, gp in [("all", g), *g.groupby("path")]:
            out.append(
                {"cells": held, "path": path, "n_cells": len(gp),
                 "median_abs_error_pct": float(gp["abs_err"].median()),
                 "worst_abs_error_pct": float(gp["abs_err"].max()),
                 "worst_cell": str(gp.loc[gp["abs_err"].idxmax(), "cell"]),
                 **({"over_5pct": int((gp["abs_err"] > 5).sum()),
                     "outside_ci": int((~gp["within_ci"].astype(bool)).sum()),
                     "over_5pct_outside_ci": int(((gp["abs_err"] > 5)
                                                  & ~gp["within_ci"].astype(bool)).sum())}
                    if "within_ci" in gp else {})}
            )  # fmt: skip
    return pd.DataFrame(out)


def error_band(rows: pd.DataFrame, path: str | None = None) -> tuple[float, int, str]:
    """The band a prediction carries: the worst |error| on held-out cells of ``path`` (or of
    every path when that path was never held out); (pct, cells, which)."""
    r = rows[rows["held_out"].astype(bool)].dropna(subset=["error_pct"]) if len(rows) else rows
    if "flagged" in r:  # a disturbed measurement says nothing about the model
        r = r[~r["flagged"].astype(bool)]
    if len(r) == 0:
        return math.nan, 0, "no held-out cell"
    if path is not None and (r["path"] == path).any():
        g = r[r["path"] == path]
        return float(g["error_pct"].abs().max()), len(g), f"held-out {path} cells"
    return float(r["error_pct"].abs().max()), len(r), "held-out cells of every path"
