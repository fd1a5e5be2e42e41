"""``travelagent serve agents`` and the LLM flags shared with ``serve worker``.

Light on purpose: aiohttp and the backends are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from travelagent.agent.base import LLMBackend
from travelagent.limits import INTERNAL_KEEPALIVE_TIMEOUT_S

API_KEY_ENVS = ("TRAVELAGENT_LLM_API_KEY", "OPENAI_API_KEY")


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    from travelagent.agent.llm.profiles import list_profiles

    group = parser.add_argument_group("LLM")
    group.add_argument("--llm", choices=("simulated", "openai"), default="simulated")
    group.add_argument(
        "--profile",
        default="instant",
        metavar="NAME",
        help=f"simulated latency profile: {', '.join(list_profiles())} (default: instant)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed for the simulated latencies")
    group.add_argument("--llm-base-url", default=None, metavar="URL", help="e.g. http://h:p/v1")
    group.add_argument("--llm-model", default=None, metavar="NAME")


def llm_from_args(args: argparse.Namespace) -> LLMBackend:
    """The backend the flags ask for; raises ValueError (with the reason) on a bad choice."""
    from travelagent.agent.llm import make_llm

    api_key = next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
    return make_llm(
        args.llm,
        profile=args.profile,
        seed=args.seed,
        base_url=args.llm_base_url,
        model=args.llm_model,
        api_key=api_key,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument(
        "--db", type=Path, default=Path("data/agent-host.sqlite3"), help="SQLite file"
    )
    parser.add_argument(
        "--synchronous",
        choices=("FULL", "NORMAL"),
        default="FULL",
        help="SQLite synchronous mode (FULL: commits survive power loss)",
    )
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="stream replies on the WebSocket route unless a message says otherwise",
    )
    parser.add_argument(
        "--max-agents", type=int, default=10_000, help="live agents; idle ones past it released"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=1024,
        help="requests (WebSockets included) served at once; past it 503 (0: no limit)",
    )
    parser.add_argument(
        "--keepalive-timeout-s",
        type=float,
        default=INTERNAL_KEEPALIVE_TIMEOUT_S,
        help="close an idle connection, or one still sending its headers, after this",
    )
    add_llm_arguments(parser)
    parser.add_argument(
        "--dev",
        action="store_true",
        help="allow the public development secrets on a non-loopback address",
    )
    parser.add_argument("--log-level", default="warning")


def main(args: argparse.Namespace) -> int:
    try:
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s agents %(message)s")
        llm = llm_from_args(args)
    except ValueError as err:  # a bad flag fails fast, before the server imports
        print(f"travelagent serve agents: {err}", file=sys.stderr)
        return 2

    from travelagent.config import SecretError, check_server_secrets

    try:
        check_server_secrets("agents", host=args.host, dev=args.dev)
    except SecretError as err:
        print(f"travelagent serve agents: {err}", file=sys.stderr)
        return 2

    from aiohttp import web

    from travelagent.agent.directory import LocalAgentDirectory
    from travelagent.agent.host import create_app

    directory = LocalAgentDirectory(
        args.db,
        llm=llm,
        process="agents",
        synchronous=args.synchronous,
        max_agents=args.max_agents,
    )
    app = create_app(directory, stream_default=args.stream, max_concurrent=args.max_concurrent)
    print(f"agent host listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        keepalive_timeout=args.keepalive_timeout_s,
    )
    return 0
