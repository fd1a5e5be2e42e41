"""The ``travelagent`` command.

Each verb lives in a light ``cli`` module of its component that defines ``add_arguments`` and
``main``; heavy imports (aiohttp, pandas, locust) happen inside ``main`` only, so ``--help`` is
fast and Locust's gevent monkey-patching never leaks into other verbs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

# verb path -> (module, help)
VERBS: dict[tuple[str, ...], tuple[str, str]] = {
    ("serve", "worker"): ("travelagent.worker.cli", "run the Worker (gateway + webhook routes)"),
    ("serve", "realtime"): ("travelagent.realtime.cli", "run the Centrifugo-compatible service"),
    ("serve", "agents"): ("travelagent.agent.cli", "run a separate TravelAgent host"),
    ("serve", "link"): ("travelagent.link.cli", "run one latency-shaping TCP proxy"),
    ("up",): ("travelagent.topology.cli", "start a whole scenario topology until Ctrl-C"),
    ("chat",): ("travelagent.commands.chat", "chat with the agent interactively"),
    ("probe",): ("travelagent.commands.probe", "a quick measurement with a printed summary"),
    ("run",): ("travelagent.runner.cli", "run an experiment: topology + Locust for every cell"),
    ("report",): ("travelagent.analysis.report_cli", "execute the notebooks into an HTML report"),
    ("export",): ("travelagent.analysis.export_cli", "a run's traces for Perfetto or OTLP"),
    ("agree",): ("travelagent.analysis.agreement_cli", "whether two runs give the same findings"),
    ("predict",): ("travelagent.commands.predict", "each path's latency under given conditions"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="travelagent",
        description="Measure the WebSocket gateway and the realtime path of a travel agent.",
    )
    from travelagent import __version__

    parser.add_argument("--version", action="version", version=f"travelagent {__version__}")
    top = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for path, (module_name, help_text) in VERBS.items():
        if len(path) == 2:
            if path[0] not in groups:
                group = top.add_parser(path[0], help=f"{path[0]} one component")
                groups[path[0]] = group.add_subparsers(dest="component", metavar="COMPONENT")
                groups[path[0]].required = True
            sub = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
        else:
            sub = top.add_parser(path[0], help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # a component not built yet must not break the rest
            if err.name and module_name.startswith(err.name):
                sub.set_defaults(_module=None, _missing=module_name)
                continue
            raise
        module.add_arguments(sub)
        sub.set_defaults(_module=module_name, _missing=None)
    return parser


def restore_sigint() -> None:
    """Make Ctrl-C (SIGINT) stop us, however we were started.

    A shell without job control (a script, CI) starts a background command (``cmd &``) with
    SIGINT ignored, Python then leaves it ignored, and every child inherits that: Ctrl-C would
    do nothing, and neither would the SIGINT that ``travelagent run`` sends Locust to stop it
    (the cell would run to its end). With Python's own handler installed, the children start
    with SIGINT at its default again.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    restore_sigint()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._module is None:
        print(f"travelagent: {args._missing} is not available in this build", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`travelagent ... | head`): stop quietly, as Unix tools do;
        # stdout goes to /dev/null so the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
