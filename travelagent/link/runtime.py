"""Run a set of links (and their control API) in this process until SIGINT/SIGTERM.

The topology runs every link of a scenario in one ``links`` subprocess: shaping timers then
compete only with each other, not with the caller's own work (Locust, a notebook), and one
control port serves them all. Its configuration is a JSON file:

    {"control": "127.0.0.1:9000",
     "timer": "timerfd",
     "links": [{"name": "client_worker", "listen": "127.0.0.1:9001",
                "upstream": "127.0.0.1:8787", "shape": {"delay_ms": 10}, "seed": 1}],
     "faults": [{"at_s": 10, "link": "client_worker", "fault": "reset", "duration_s": 2}],
     "nice": -10}

``nice`` (default ``NICE``, -10) is the links process's scheduling priority. A kernel link
(netem) releases a packet from a softirq, ahead of every process; a link in user space waits
for a CPU like any process, and on a 2-core machine shared with the servers and Locust a
release that falls due while both cores run them waits for the scheduler: that wait is delay
nobody configured. A higher priority lets the release preempt them, as netem's would. Only
root (or CAP_SYS_NICE) may raise it; otherwise the links run at the priority they were given
and say so on stderr. ``TRAVELAGENT_LINK_NICE`` overrides the default (0 keeps it unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from travelagent.link.schedule import LinkShape
from travelagent.link.timer import LoopTimer, ThreadTimer, Timer, best_timer

if TYPE_CHECKING:
    from travelagent.link.proxy import Link

TIMERS = ("timerfd", "thread", "loop")
NICE = -10


def raise_priority(nice: int | None = None) -> int:
    """Set this process's nice value to ``nice`` (the config's, else ``TRAVELAGENT_LINK_NICE``,
    else ``NICE``) and return the one it runs at. Never fails: without the privilege the
    process keeps its priority and a line on stderr says so."""
    if nice is None:
        env = os.environ.get("TRAVELAGENT_LINK_NICE", "").strip()
        try:
            nice = int(env) if env else NICE
        except ValueError:
            print(
                f"travelagent links: TRAVELAGENT_LINK_NICE must be an integer, got {env!r}; "
                f"using {NICE}",
                file=sys.stderr,
            )
            nice = NICE
    if isinstance(nice, bool) or not isinstance(nice, int) or not -20 <= nice <= 19:
        raise ValueError(f"nice must be an integer between -20 and 19, got {nice!r}")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice in (0, current):
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        print(
            f"travelagent links: cannot set nice {nice} (needs root or CAP_SYS_NICE); "
            f"running at {current}, where releases may wait for a CPU",
            file=sys.stderr,
        )
    return os.getpriority(os.PRIO_PROCESS, 0)


def split_addr(addr: str) -> tuple[str, int]:
    """'HOST:PORT' to (host, port), with a clear error."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address must be HOST:PORT, got {addr!r}")
    return host, int(port)


def links_from_config(config: dict[str, Any], timer: Timer | None = None) -> list[Link]:
    from travelagent.link.proxy import Link

    links = []
    for entry in config.get("links", []):
        listen_host, listen_port = split_addr(entry["listen"])
        up_host, up_port = split_addr(entry["upstream"])
        links.append(
            Link(
                entry["name"],
                listen_host=listen_host,
                listen_port=listen_port,
                upstream_host=up_host,
                upstream_port=up_port,
                shape=LinkShape(**entry.get("shape", {})),
                seed=entry.get("seed"),
                recording=bool(entry.get("record", False)),
                timer=timer,
            )
        )
    return links


async def serve(config: dict[str, Any], *, ready: asyncio.Event | None = None) -> None:
    """Start the links and the control API, then wait for SIGINT/SIGTERM."""
    from travelagent.link.control import LinkSet, serve_control

    loop = asyncio.get_running_loop()
    raise_priority(config.get("nice"))
    kind = config.get("timer", "timerfd")
    if kind not in TIMERS:
        raise ValueError(f"timer must be one of {', '.join(TIMERS)}; got {kind!r}")
    timer: Timer
    if kind == "timerfd":
        timer = best_timer(loop)
    elif kind == "thread":
        # The timer thread must get the GIL back quickly when its deadline comes (default 5 ms).
        sys.setswitchinterval(0.0005)
        timer = ThreadTimer(loop)
    else:
        timer = LoopTimer(loop)
    linkset = LinkSet(links_from_config(config, timer), config.get("faults"))
    await linkset.start()
    runner = None
    if config.get("control"):
        from travelagent.config import check_server_secrets

        host, port = split_addr(config["control"])
        check_server_secrets("link", host=host, dev=bool(config.get("dev")))
        runner = await serve_control(linkset, host, port)
    if config.get("start_schedule"):
        linkset.start_schedule()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    for link in linkset.links.values():
        print(
            f"link {link.name}: {link.listen_host}:{link.listen_port} -> "
            f"{link.upstream_host}:{link.upstream_port} {link.shape.to_dict()}",
            flush=True,
        )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await linkset.stop()
        timer.close()
