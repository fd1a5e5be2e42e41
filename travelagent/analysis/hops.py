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


def compute_hops(run: Run) -> pd.DataFrame:
    """One row per hop of every ok message (columns ``HOP_COLUMNS``)."""
    msgs = run.ok()[["msg_id", "cell", "arch", "publish", "streaming", "send_ns", "recv_ns"]]
    if msgs.empty:
        return _empty_hops()
    st = run.stamps
    st = st[st["msg_id"].isin(msgs["msg_id"]) & ~st["name"].str.startswith("client.")]
    st = st[["msg_id", "seq", "name", "t_ns", "process"]].copy()
    st["t_ns"] = st["t_ns"].astype("int64")
    st["order"] = st["seq"].astype("int64") + 1
    ends = []
    for name, col, order in (("client.send", "send_ns", 0), ("client.recv", "recv_ns", 1 << 30)):
        e = pd.DataFrame(
            {
                "msg_id": msgs["msg_id"].to_numpy(),
                "name": name,
                "t_ns": msgs[col].astype("int64").to_numpy(),
                "process": "client",
                "order": order,
            }
        )
        ends.append(e)
    chain = pd.concat([ends[0], st.drop(columns="seq"), ends[1]], ignore_index=True)
    chain = chain.sort_values(["msg_id", "order"], kind="stable").reset_index(drop=True)
    proc = chain["process"].fillna("").astype(str)
    inferred = chain["name"].str.split(".").str[0].map(_PREFIX_PROCESS)
    proc = proc.where(proc != "", inferred.fillna(""))
    # agent.* / llm.* without a label: the process of the previous stamp (the agent's host)
    proc = proc.mask(proc == "").ffill().fillna("")
    chain["process"] = proc
    chain["t_ns"] = chain["t_ns"].astype("int64")
    # Pair each stamp with the next one of the same message, in integer ns (a shift through
    # pandas would pass through float and lose nanoseconds at 1.7e18).
    mid = chain["msg_id"].to_numpy()
    t = chain["t_ns"].to_numpy()
    names = chain["name"].to_numpy()
    procs = chain["process"].to_numpy()
    valid = np.flatnonzero(mid[:-1] == mid[1:])
    hops = pd.DataFrame(
        {
            "msg_id": mid[valid],
            "from_name": names[valid],
            "to_name": names[valid + 1],
            "from_process": procs[valid],
            "to_process": procs[valid + 1],
            "start_ns": t[valid],
            "dur_ns": t[valid + 1] - t[valid],
        }
    )
    hops["idx"] = hops.groupby("msg_id", sort=False).cumcount()
    hops["dur_ms"] = hops["dur_ns"] / 1e6
    is_llm = hops["from_name"].isin(LLM_FROM) & hops["to_name"].isin(LLM_TO)
    crosses = (hops["from_process"] != hops["to_process"]) & ~(
        hops["from_process"].eq("llm") | hops["to_process"].eq("llm")
    )
    hops["network"] = crosses & ~is_llm
    hops["category"] = np.where(is_llm, "llm", np.where(hops["network"], "network", "processing"))
    hops["hop"] = np.where(
        hops["network"],
        hops["from_process"] + "→" + hops["to_process"],
        hops["from_name"] + "→" + hops["to_name"],
    )
    hops = hops.merge(msgs[["msg_id", "cell", "arch", "publish", "streaming"]], on="msg_id")
    # Legs that are HTTP requests: the webhook POST always, the publish unless on a socket.
    webhook = (
        hops["network"] & hops["from_process"].eq("realtime") & hops["to_process"].eq("worker")
    )
    publish = (
        hops["network"]
        & hops["from_name"].eq("worker.publish")
        & hops["publish"].astype(str).str.startswith("http")
    )
    hops["http"] = webhook | publish
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
    names = run.stamps.groupby("msg_id")["name"].agg(frozenset)
    meta = run.ok().set_index("msg_id")[["cell", "arch", "publish"]]
    per = per.join(meta)
    # A path is complete when every non-client stamp its architecture defines is present
    # (a real Centrifugo, say, adds no realtime.* stamps: its hops cannot be counted).
    required = {a: frozenset(n for n in path_of(a) if not n.startswith("client.")) for a in
                ("gateway", "realtime", "hybrid")}  # fmt: skip
    have = [names.get(i) for i in per.index]
    per["complete"] = [
        isinstance(h, frozenset) and required.get(a, required["gateway"]) <= h
        for h, a in zip(have, per["arch"], strict=True)
    ]
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
