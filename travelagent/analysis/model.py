"""The hop model: a path's latency predicted from its scenario, checked against the run.

    predicted = sum over the path's network legs of the link's one-way delay_ms
              + set-up: an ``http-new`` publish opens a connection per publish and pays
                setup_rtts x 2 x delay_ms of the worker_realtime link (pooled clients, the
                webhook's pooled client and sockets pay nothing per message)
              + transfer: reply bytes x 8 / bandwidth_kbps on the leg back to the client
              + LLM: the cell's median agent.start -> llm.done from the stamps
                (or ``llm_ms`` given by the caller, e.g. from the profile)

Jitter is left out (its median contribution is about zero for symmetric jitter); processing
and queueing are not modelled, so the error is what the model does not know about.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from travelagent.analysis.load import Run

# (leg as named in hops, link in the scenario)
GATEWAY_LEGS = (("client→worker", "client_worker"), ("worker→client", "client_worker"))
REALTIME_LEGS = (
    ("client→realtime", "client_realtime"),
    ("realtime→worker", "realtime_worker"),
    ("worker→realtime", "worker_realtime"),
    ("realtime→client", "client_realtime"),
)
AGENT_LEGS = (("worker→agents", "worker_agents"), ("agents→worker", "worker_agents"))


def _links(cell: pd.Series) -> dict[str, Any]:
    try:
        links = json.loads(cell.get("links") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return links if isinstance(links, dict) else {}


def _agents_separate(run: Run, cell: pd.Series) -> bool:
    hops = run.hops
    stamped = hops[hops["cell"] == cell["cell"]]
    if not stamped.empty:
        return bool(stamped["from_process"].eq("agents").any())
    return str(cell.get("agents") or "") not in ("", "in-process", "inprocess", "worker", "local")


def path_legs(arch: str, *, agents_separate: bool = False) -> list[tuple[str, str]]:
    legs = list(REALTIME_LEGS if arch == "realtime" else GATEWAY_LEGS)
    if agents_separate:
        # the agent host sits between the worker's receive and its send/publish
        i = 2 if arch == "realtime" else 1
        legs[i:i] = list(AGENT_LEGS)
    return legs


def leg_predictions(
    links: dict[str, Any], arch: str, publish: str, *, agents_separate: bool = False,
    reply_bytes: float = 0.0,
) -> pd.DataFrame:  # fmt: skip
    """Predicted one-way ms per leg: delay, set-up and transfer, with the link it rides."""
    rows = []
    legs = path_legs(arch, agents_separate=agents_separate)
    for i, (leg, link_name) in enumerate(legs):
        link = links.get(link_name) or {}
        delay = float(link.get("delay_ms") or 0.0)
        setup = 0.0
        if leg == "worker→realtime" and publish == "http-new":
            setup = float(link.get("setup_rtts") or 0) * 2 * delay
        transfer = 0.0
        kbps = float(link.get("bandwidth_kbps") or 0)
        if i == len(legs) - 1 and kbps > 0:
            transfer = reply_bytes * 8 / kbps  # bits / (kbit/s) = ms
        rows.append(
            {"leg": leg, "link": link_name, "delay_ms": delay, "setup_ms": setup,
             "transfer_ms": transfer, "predicted_ms": delay + setup + transfer}
        )  # fmt: skip
    return pd.DataFrame(rows)


def model_table(run: Run, *, llm_ms: dict[str, float] | None = None) -> pd.DataFrame:
    """Per cell: predicted median service time, its parts, the measured median, the error."""
    from travelagent.analysis.decompose import decompose_messages

    per = decompose_messages(run)
    ok = run.ok()
    rows = []
    for _, cell in run.cells.iterrows():
        name = cell["cell"]
        links = _links(cell)
        m = ok[ok["cell"] == name]
        if m.empty or not links:
            continue
        sep = _agents_separate(run, cell)
        legs = leg_predictions(
            links, cell["arch"], cell["publish"], agents_separate=sep,
            reply_bytes=float(m["bytes"].astype(float).median()),
        )  # fmt: skip
        d = per[per["cell"] == name]
        if llm_ms and name in llm_ms:
            llm, llm_source = llm_ms[name], "given"
        elif not d.empty:
            llm, llm_source = float(d["llm_ms"].median()), "stamps"
        else:
            llm, llm_source = np.nan, "unknown"
        network = float(legs["delay_ms"].sum())
        setup = float(legs["setup_ms"].sum())
        transfer = float(legs["transfer_ms"].sum())
        predicted = network + setup + transfer + llm
        measured = float(m["service_ms"].astype(float).median())
        rows.append(
            {
                "cell": name,
                "arch": cell["arch"],
                "publish": cell["publish"],
                "streaming": cell["streaming"],
                "legs": len(legs),
                "network_ms": network,
                "setup_ms": setup,
                "transfer_ms": transfer,
                "llm_ms": llm,
                "llm_source": llm_source,
                "predicted_ms": predicted,
                "measured_p50_ms": measured,
                "error_ms": measured - predicted,
                "error_pct": 100 * (measured - predicted) / predicted if predicted else np.nan,
            }
        )
    return pd.DataFrame(rows)


def model_legs(run: Run) -> pd.DataFrame:
    """Per cell and network leg: the predicted one-way time beside the measured median."""
    hops = run.hops
    net = hops[hops["network"]]
    measured = net.groupby(["cell", "hop"])["dur_ms"].median()
    rows = []
    for _, cell in run.cells.iterrows():
        links = _links(cell)
        if not links:
            continue
        legs = leg_predictions(
            links, cell["arch"], cell["publish"], agents_separate=_agents_separate(run, cell)
        )
        for _, leg in legs.iterrows():
            got = measured.get((cell["cell"], leg["leg"]), np.nan)
            rows.append(
                {"cell": cell["cell"], "leg": leg["leg"], "link": leg["link"],
                 "predicted_ms": leg["predicted_ms"], "measured_p50_ms": float(got),
                 "error_ms": float(got) - leg["predicted_ms"]}
            )  # fmt: skip
    return pd.DataFrame(rows)
