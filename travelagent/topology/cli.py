"""``travelagent up SCENARIO``: the whole topology, links included, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from travelagent.topology.scenario import list_presets

    presets = ", ".join(list_presets())
    parser.add_argument("scenario", help=f"a preset name ({presets}) or a TOML file")
    parser.add_argument("--run-dir", default=None, help="logs and databases (default: a temp dir)")
    parser.add_argument(
        "--no-faults", action="store_true", help="do not start the scenario's fault schedule"
    )
    parser.add_argument("--start-timeout-s", type=float, default=30.0)
    parser.add_argument("--grace-s", type=float, default=5.0, help="SIGTERM to SIGKILL wait")


def main(args: argparse.Namespace) -> int:
    import signal
    import threading

    from travelagent.topology.launcher import Topology
    from travelagent.topology.scenario import ScenarioError
    from travelagent.topology.supervisor import ChildFailed, CrashReport, StartInterrupted

    try:
        topo = Topology(
            args.scenario,
            run_dir=args.run_dir,
            start_timeout_s=args.start_timeout_s,
            grace_s=args.grace_s,
            start_faults=not args.no_faults,
        )
    except ScenarioError as err:
        print(f"travelagent up: {err}", file=sys.stderr)
        return 2

    done = threading.Event()
    crashed: list[CrashReport] = []

    def on_crash(report: CrashReport) -> None:
        crashed.append(report)
        done.set()

    def on_signal(signum: int, frame: object) -> None:
        topo.abort.set()  # while starting: start() stops at its next safe point
        done.set()  # once running: stop everything

    topo.on_crash = on_crash
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"starting scenario {topo.scenario.name!r}; logs in {topo.log_dir}", flush=True)
    try:
        topo.start()
    except ChildFailed as err:
        print(f"travelagent up: {err}", file=sys.stderr)
        return 1
    except StartInterrupted:
        print("interrupted while starting; stopped", file=sys.stderr)
        return 130
    try:
        secrets_path = topo.run_dir / "secrets.env"
        secrets_path.touch(mode=0o600)
        secrets_path.write_text(
            "".join(f"export {k}={v}\n" for k, v in topo.secrets.items()), encoding="utf-8"
        )
        for name, url in topo.urls.items():
            print(f"  {name:<16} {url}")
        print(f"  {'secrets':<16} source {secrets_path}")
        pids = " ".join(f"{name}={pid}" for name, pid in topo.pids.items())
        print(f"  {'processes':<16} {pids}")
        print("ready; Ctrl-C stops everything", flush=True)
        done.wait()
    finally:
        topo.stop()
    for report in crashed:
        print(f"travelagent up: {report}", file=sys.stderr)
    print("stopped", flush=True)
    return 1 if crashed else 0
