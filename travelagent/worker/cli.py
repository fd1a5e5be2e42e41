"""``travelagent serve worker``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from travelagent.agent.cli import add_llm_arguments
    from travelagent.vocab import PUBLISH_MODES, WEBHOOK_MODES

    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--db", type=Path, default=Path("data/agents.sqlite3"), help="SQLite file")
    add_llm_arguments(p)
    p.add_argument("--realtime-url", default="http://127.0.0.1:8000", help="realtime base URL")
    p.add_argument("--publish", choices=PUBLISH_MODES, default="http-pooled")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--webhook-mode", choices=WEBHOOK_MODES, default="after-publish")
    p.add_argument("--agents-url", default=None, help="separate agent host (default: in-process)")
    p.add_argument("--max-frame-bytes", type=int, default=1 << 20)
    access = p.add_mutually_exclusive_group()
    access.add_argument(
        "--insecure-open-gateway",
        dest="gateway_access",
        action="store_const",
        const="insecure-open",
        help="admit gateway sockets without a token on any address (anyone may act as anyone)",
    )
    access.add_argument(
        "--gateway-token-required",
        dest="gateway_access",
        action="store_const",
        const="token",
        help="require a token on the gateway even on loopback",
    )
    p.set_defaults(gateway_access="auto")
    p.add_argument("--max-connections-per-address", type=int, default=1000, help="0: no limit")
    p.add_argument(
        "--max-connections-per-user", type=int, default=100, help="gateway sockets; 0: no limit"
    )
    p.add_argument("--max-room-bindings", type=int, default=100_000, help="0: no limit")
    p.add_argument("--max-live-agents", type=int, default=10_000, help="0: no limit")
    p.add_argument(
        "--webhook-dedup-memory",
        default=None,
        help=f"webhook ids held in memory; the rest are read from the database (default "
        f"${DEDUP_MEMORY_ENV} or 16384)",
    )
    p.add_argument(
        "--keepalive-timeout-s",
        type=float,
        default=75.0,
        help="close an idle HTTP connection, or one still sending its headers (default 75)",
    )
    p.add_argument("--jwt-max-lifetime-s", type=float, default=24 * 3600.0)
    p.add_argument("--jwt-audience", default=None, help="require this aud in tokens")
    p.add_argument("--jwt-issuer", default=None, help="require this iss in tokens")
    p.add_argument(
        "--dev",
        action="store_true",
        help="allow the public development secrets on a non-loopback address",
    )
    p.add_argument("--log-level", default="warning")


# The default of ``--webhook-dedup-memory`` when set (``make soak`` lowers it so that memory is
# full within the soak's warm-up).
DEDUP_MEMORY_ENV = "TRAVELAGENT_WEBHOOK_DEDUP_MEMORY"


def _dedup_memory(flag: str | None) -> int:
    import os

    from travelagent.worker.config import WorkerConfig

    raw = flag if flag is not None else os.environ.get(DEDUP_MEMORY_ENV, "")
    if not raw.strip():
        return WorkerConfig.webhook_dedup_memory
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"--webhook-dedup-memory (or ${DEDUP_MEMORY_ENV}) must be an integer >= 1, not {raw!r}"
        )
    return value


def main(args: argparse.Namespace) -> int:
    from aiohttp import web

    from travelagent.agent.cli import llm_from_args
    from travelagent.config import JWT_SECRET_ENV, SecretError, check_server_secrets, secret
    from travelagent.monitor import start_tracemalloc_from_env
    from travelagent.worker.app import create_app
    from travelagent.worker.config import WorkerConfig

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s worker %(message)s")
    try:
        check_server_secrets("worker", host=args.host, dev=args.dev)
        config = WorkerConfig(
            host=args.host,
            port=args.port,
            db_path=args.db,
            realtime_url=args.realtime_url,
            publish=args.publish,
            stream=args.stream,
            webhook_mode=args.webhook_mode,
            agents_url=args.agents_url,
            max_frame_bytes=args.max_frame_bytes,
            gateway_access=args.gateway_access,
            max_connections_per_address=args.max_connections_per_address,
            max_connections_per_user=args.max_connections_per_user,
            max_room_bindings=args.max_room_bindings,
            max_live_agents=args.max_live_agents,
            keepalive_timeout_s=args.keepalive_timeout_s,
            jwt_secret=secret(JWT_SECRET_ENV),
            jwt_max_lifetime_s=args.jwt_max_lifetime_s,
            jwt_audience=args.jwt_audience,
            jwt_issuer=args.jwt_issuer,
            webhook_dedup_memory=_dedup_memory(args.webhook_dedup_memory),
        )
        llm = None if args.agents_url else llm_from_args(args)
    except (ValueError, SecretError) as err:
        print(f"travelagent serve worker: {err}", file=sys.stderr)
        return 2
    config.db_path.parent.mkdir(parents=True, exist_ok=True)
    start_tracemalloc_from_env("worker")  # a diagnostic, off unless its variable is set
    app = create_app(config, llm=llm)
    print(f"worker listening on http://{config.host}:{config.port}", flush=True)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=None,
        access_log=None,
        keepalive_timeout=config.keepalive_timeout_s,
    )
    return 0
