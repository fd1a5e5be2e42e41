"""Hops: the intervals between consecutive stamps of a message, and hop counts per path.

Design rules:
- A message's chain starts at ``client.send`` and ends at ``client.recv`` taken from the
  message row (``send_ns``/``recv_ns``), with the other stamps in between in the order they
  were appended (``seq``). So the hops of a message always sum to its service time exactly,
  whatever the components stamped.
- ``client.first`` is a marker, not a link of the chain: for a streamed reply it is taken while
  the agent is still working, so placing it in the chain would produce a negative hop.
- A hop is a *network* hop when its two stamps come from different processes. The LLM is not
  a hop of the note's paths: hops from ``agent.start`` to ``llm.done`` are category ``llm``.
- Stamps without a process label (a peer that sends ``[name, t_ns]``) get one from the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from travelagent.wire.trace import GATEWAY_PATH, REALTIME_PATH

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

LLM_FROM = frozenset({"agent.start", "llm.first"})
LLM_TO = frozenset({"llm.first", "llm.done"})
_PREFIX_PROCESS = {"client": "client", "worker": "worker", "realtime": "realtime"}
# The note's claimed network hop counts per path (ARCHITECTURE.md, "Total Latency").
NOTE_HOPS = {"gateway": (2, 3), "hybrid": (2, 3), "realtime": (5, 6)}


def path_of(arch: str) -> tuple[str, ...]:
    """Stamp names in path order for an architecture (hybrid agent traffic takes the gateway)."""
    return REALTIME_PATH if arch == "realtime" else GATEWAY_PATH


HOP_COLUMNS = [
    "msg_id", "cell", "arch", "publish", "streaming", "idx", "from_name", "to_name",
    "from_process", "to_process", "start_ns", "dur_ns", "dur_ms", "network", "category", "hop",
    "http",
]  # fmt: skip


_BOOL_COLUMNS = ("streaming", "network", "http")
_INT_COLUMNS = ("idx", "start_ns", "dur_ns")


def _empty_hops() -> pd.DataFrame:
    """No hops, but typed columns: boolean masks and groupbys on it keep working."""
    dtypes = {c: "bool" if c in _BOOL_COLUMNS else "int64" if c in _INT_COLUMNS else "object"
              for c in HOP_COLUMNS}  # fmt: skip
    dtypes["dur_ms"] = "float64"
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def _codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    return pd.Categorical(values, categories=categories).codes.astype(np.int64)


def compute_hops(run: Run) -> pd.DataFrame:
    """One row per hop of every ok message (columns ``HOP_COLUMNS``).

    Vectorised over integer codes (message, stamp name, process): a run of 100k messages has
    about a million stamps, and string sorting or per-row string work would dominate.
    """
    msgs = run.ok()[["msg_id", "cell", "arch", "publish", "streaming", "send_ns", "recv_ns"]]
    if msgs.empty:
        return _empty_hops()
    msgs = msgs.drop_duplicates("msg_id").reset_index(drop=True)
    n = len(msgs)
    st = run.stamps
    st = st[~st["name"].str.startswith("client.")]
    st_msg = pd.Index(msgs["msg_id"]).get_indexer(st["msg_id"])
    keep = st_msg >= 0
    st, st_msg = st[keep], st_msg[keep]
    names = sorted({"client.send", "client.recv", *st["name"].unique()})
    procs = sorted({"", *_PREFIX_PROCESS.values(), *st["process"].fillna("").unique()})
    arange = np.arange(n, dtype=np.int64)
    msg = np.concatenate([arange, st_msg.astype(np.int64), arange])
    order = np.concatenate(
        [np.zeros(n, np.int64), st["seq"].to_numpy(np.int64) + 1, np.full(n, 1 << 30)]
    )
    t = np.concatenate(
        [msgs["send_ns"].to_numpy(np.int64), st["t_ns"].to_numpy(np.int64),
         msgs["recv_ns"].to_numpy(np.int64)]
    )  # fmt: skip
    name = np.concatenate(
        [np.full(n, names.index("client.send")), _codes(st["name"], names),
         np.full(n, names.index("client.recv"))]
    )  # fmt: skip
    proc = np.concatenate(
        [np.full(n, procs.index("client")), _codes(st["process"].fillna(""), procs),
         np.full(n, procs.index("client"))]
    )  # fmt: skip
    sort = np.lexsort((order, msg))
    msg, t, name, proc = msg[sort], t[sort], name[sort], proc[sort]
    # Missing process labels: from the stamp's name, else the previous stamp's process (an
    # agent.* / llm.* stamp without a label is taken where the agent runs).
    empty = procs.index("")
    by_name = np.array(
        [procs.index(_PREFIX_PROCESS.get(x.split(".")[0], "")) for x in names], dtype=np.int64
    )
    proc = np.where(proc == empty, by_name[name], proc)
    if (proc == empty).any():
        filled = pd.Series(np.where(proc == empty, np.nan, proc)).ffill().fillna(empty)
        proc = filled.to_numpy(np.int64)
    # Pair each stamp with the next one of the same message, in integer ns.
    pair = np.flatnonzero(msg[:-1] == msg[1:])
    a, b = pair, pair + 1
    names_arr = np.array(names, dtype=object)
    procs_arr = np.array(procs, dtype=object)
    is_llm = np.isin(names_arr[name[a]], list(LLM_FROM)) & np.isin(names_arr[name[b]], list(LLM_TO))
    llm_proc = procs.index("llm") if "llm" in procs else -1
    crosses = (proc[a] != proc[b]) & (proc[a] != llm_proc) & (proc[b] != llm_proc)
    network = crosses & ~is_llm
    # Hop labels built once per distinct (from, to) pair, not once per row.
    k = max(len(names), len(procs))
    key = np.where(network, proc[a] * k + proc[b], -1 - (name[a] * k + name[b]))
    uniq, inverse = np.unique(key, return_inverse=True)
    labels = np.array(
        [f"{procs[u // k]}→{procs[u % k]}" if u >= 0 else
         f"{names[(-1 - u) // k]}→{names[(-1 - u) % k]}" for u in uniq],
        dtype=object,
    )  # fmt: skip
    m = msg[a]
    first_of_msg = np.r_[True, m[1:] != m[:-1]]
    starts = np.flatnonzero(first_of_msg)
    idx = np.arange(len(m)) - np.repeat(starts, np.diff(np.r_[starts, len(m)]))
    publish = msgs["publish"].astype(str).to_numpy(dtype=object)[m]
    from_p, to_p = procs_arr[proc[a]], procs_arr[proc[b]]
    # Legs that are HTTP requests: the webhook POST always, the publish unless on a socket.
    webhook = network & (from_p == "realtime") & (to_p == "worker")
    http_publish = (
        network
        & (names_arr[name[a]] == "worker.publish")
        & np.array([p.startswith("http") for p in publish], dtype=bool)
    )
    dur = t[b] - t[a]
    hops = pd.DataFrame(
        {
            "msg_id": msgs["msg_id"].to_numpy(dtype=object)[m],
            "cell": msgs["cell"].to_numpy(dtype=object)[m],
            "arch": msgs["arch"].to_numpy(dtype=object)[m],
            "publish": publish,
            "streaming": msgs["streaming"].to_numpy(dtype=bool)[m],
            "idx": idx,
            "from_name": names_arr[name[a]],
            "to_name": names_arr[name[b]],
            "from_process": from_p,
            "to_process": to_p,
            "start_ns": t[a],
            "dur_ns": dur,
            "dur_ms": dur / 1e6,
            "network": network,
            "category": np.where(is_llm, "llm", np.where(network, "network", "processing")),
            "hop": labels[inverse],
            "http": webhook | http_publish,
        }
    )
    return hops[HOP_COLUMNS]


def message_hop_counts(run: Run) -> pd.DataFrame:
    """Per ok message: network hops on its path, HTTP exchanges among them, path completeness."""
    hops = run.hops
    if hops.empty:
        cols = ["msg_id", "cell", "arch", "publish", "network_hops", "http_exchanges",
                "traversals"]  # fmt: skip
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        out["complete"] = pd.Series(dtype="bool")
        return out
    g = hops.groupby("msg_id", sort=False)
    per = pd.DataFrame(
        {
            "network_hops": g["network"].sum().astype(int),
            "http_exchanges": g["http"].sum().astype(int),
        }
    )
    # An HTTP request is answered: its response crosses the network once more, even if the
    # reply to the user does not wait for it. The note counts those (its "2 hops" for publish).
    per["traversals"] = per["network_hops"] + per["http_exchanges"]
    meta = run.ok().drop_duplicates("msg_id").set_index("msg_id")[["cell", "arch", "publish"]]
    per = per.join(meta)
    # A path is complete when every non-client stamp its architecture defines is present
    # (a real Centrifugo, say, adds no realtime.* stamps: its hops cannot be counted).
    required = pd.DataFrame(
        [(a, n) for a in per["arch"].unique() for n in path_of(str(a))
         if not n.startswith("client.")],
        columns=["arch", "name"],
    )  # fmt: skip
    have = run.stamps[["msg_id", "name"]].drop_duplicates()
    have = have.merge(meta["arch"].reset_index(), on="msg_id").merge(required)
    found = have.groupby("msg_id").size()
    needed = per["arch"].map(required.groupby("arch").size())
    per["complete"] = found.reindex(per.index).to_numpy() == needed.to_numpy()
    return per.reset_index()


def hop_counts(run: Run) -> pd.DataFrame:
    """Hop counts per path (arch, publish) counted from complete messages, beside the note's."""
    per = message_hop_counts(run)
    per = per[per["complete"].astype(bool)]
    rows = []
    for (arch, publish), g in per.groupby(["arch", "publish"], sort=True):
        lo, hi = NOTE_HOPS.get(str(arch), (np.nan, np.nan))
        trav = int(g["traversals"].mode().iloc[0])
        rows.append(
            {
                "arch": arch,
                "publish": publish,
                "messages": len(g),
                "network_hops": int(g["network_hops"].mode().iloc[0]),
                "http_exchanges": int(g["http_exchanges"].mode().iloc[0]),
                "traversals": trav,
                "traversals_min": int(g["traversals"].min()),
                "traversals_max": int(g["traversals"].max()),
                "note_claim": f"{lo}-{hi}" if lo == lo else "",
                "within_claim": bool(lo <= trav <= hi) if lo == lo else None,
            }
        )
    return pd.DataFrame(rows)


def example_message(run: Run, cell: str) -> str | None:
    """The msg_id of the message with the median service time in ``cell`` (for waterfalls)."""
    m = run.ok()
    m = m[(m["cell"] == cell) & m["msg_id"].isin(run.hops["msg_id"])]
    if m.empty:
        return None
    s = m["service_ms"].astype(float).to_numpy()
    return str(m["msg_id"].iloc[int(np.argmin(np.abs(s - np.median(s))))])
