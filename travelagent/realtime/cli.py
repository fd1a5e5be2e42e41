"""``travelagent serve realtime``: run the Centrifugo-compatible realtime service."""

from __future__ import annotations

import argparse
import os

from travelagent.realtime.config import DEFAULT_WEBHOOK_URL
from travelagent.realtime.idempotency import IDEMPOTENCY_MAX_KEYS, MAX_KEYS_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--webhook-url",
        default=DEFAULT_WEBHOOK_URL,
        help="where client publications are POSTed (empty string: no webhooks)",
    )
    parser.add_argument("--history", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--db", default="realtime.sqlite", help="SQLite file for --history sqlite")
    parser.add_argument(
        "--rooms",
        default=None,
        help="comma-separated room names clients may enter (default: every room)",
    )
    parser.add_argument("--max-frame-bytes", type=int, default=64 * 1024)
    parser.add_argument(
        "--jwt-max-lifetime-s",
        type=float,
        default=24 * 3600.0,
        help="refuse connection tokens whose exp is further ahead than this (default 1 day)",
    )
    parser.add_argument(
        "--connect-timeout-s",
        type=float,
        default=10.0,
        help="close a socket that has not sent connect within this (0: never; default 10)",
    )
    parser.add_argument(
        "--max-connections-per-address",
        type=int,
        default=1000,
        help="WebSocket connections one address may hold (0: no limit; default 1000)",
    )
    parser.add_argument(
        "--max-connections-per-user",
        type=int,
        default=100,
        help="connected sessions one user (token sub) may hold (0: no limit; default 100)",
    )
    parser.add_argument(
        "--max-queued-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="a client with more unsent bytes is disconnected as slow (default 16 MiB)",
    )
    parser.add_argument(
        "--idempotency-ttl-s",
        type=float,
        default=900.0,
        help="keep publish idempotency keys this long (in --db with --history sqlite; >= 300)",
    )
    parser.add_argument(
        "--idempotency-max-keys",
        type=int,
        default=None,
        help=f"and at most this many, the oldest dropped first (default ${MAX_KEYS_ENV} if set, "
        f"else {IDEMPOTENCY_MAX_KEYS:,})",
    )
    parser.add_argument("--history-stream-ttl-s", type=float, default=3600.0)
    parser.add_argument("--history-max-streams", type=int, default=100_000)
    parser.add_argument(
        "--keepalive-timeout-s",
        type=float,
        default=75.0,
        help="close an idle HTTP connection, or one still sending its headers (default 75)",
    )
    parser.add_argument("--jwt-audience", default=None, help="require this aud in tokens")
    parser.add_argument("--jwt-issuer", default=None, help="require this iss in tokens")
    parser.add_argument("--ping-interval-s", type=float, default=25.0)
    parser.add_argument(
        "--webhook-connection",
        action="store_true",
        help="also send connect/disconnect events (presence events are always on)",
    )
    parser.add_argument(
        "--webhook-workers",
        type=int,
        default=64,
        help="webhooks in flight at once (each waits for the worker's answer; default 64)",
    )
    parser.add_argument(
        "--webhook-retry-schedule-s",
        default=None,
        help="comma-separated delays before each retry, in seconds (default: Standard "
        "Webhooks' 5,300,1800,7200,18000,36000,36000)",
    )
    parser.add_argument(
        "--webhook-outbox",
        default="",
        help="SQLite file of the durable webhook outbox: webhooks owed survive a restart "
        "(default: in memory only)",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="allow the public development secrets on a non-loopback address",
    )
    # warning by default: a log line per webhook request would be work on the measured path
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )


def main(args: argparse.Namespace) -> int:
    import logging
    import sqlite3
    import sys

    from aiohttp import web

    from travelagent.realtime.server import RealtimeConfig, create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from travelagent.config import SecretError, check_server_secrets

    try:
        check_server_secrets("realtime", host=args.host, dev=args.dev)
    except SecretError as err:
        print(f"travelagent serve realtime: {err}", file=sys.stderr)
        return 2
    rooms = None
    if args.rooms is not None:
        rooms = frozenset(r.strip() for r in args.rooms.split(",") if r.strip())
    if args.webhook_workers < 1:
        print("travelagent serve realtime: --webhook-workers must be at least 1", file=sys.stderr)
        return 2
    schedule: dict[str, tuple[float, ...]] = {}
    if args.webhook_retry_schedule_s is not None:
        try:
            delays = tuple(float(d) for d in args.webhook_retry_schedule_s.split(",") if d.strip())
        except ValueError:
            delays = (-1.0,)
        if any(d < 0 for d in delays):
            print(
                "travelagent serve realtime: --webhook-retry-schedule-s takes delays >= 0, "
                "comma-separated",
                file=sys.stderr,
            )
            return 2
        schedule["webhook_retry_schedule_s"] = delays
    try:
        max_keys = (
            args.idempotency_max_keys
            if args.idempotency_max_keys is not None
            else int(os.environ.get(MAX_KEYS_ENV) or IDEMPOTENCY_MAX_KEYS)
        )
    except ValueError:
        max_keys = 0
    if max_keys < 1:
        print(
            f"travelagent serve realtime: --idempotency-max-keys (or ${MAX_KEYS_ENV}) must be an "
            "integer >= 1",
            file=sys.stderr,
        )
        return 2
    config = RealtimeConfig.from_env(
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        history=args.history,
        db_path=args.db,
        allowed_rooms=rooms,
        max_frame_bytes=args.max_frame_bytes,
        jwt_max_lifetime_s=args.jwt_max_lifetime_s,
        connect_timeout_s=args.connect_timeout_s,
        max_connections_per_address=args.max_connections_per_address,
        max_connections_per_user=args.max_connections_per_user,
        max_queued_bytes=args.max_queued_bytes,
        history_stream_ttl_s=args.history_stream_ttl_s,
        idempotency_ttl_s=args.idempotency_ttl_s,
        idempotency_max_keys=max_keys,
        history_max_streams=args.history_max_streams,
        keepalive_timeout_s=args.keepalive_timeout_s,
        jwt_audience=args.jwt_audience,
        jwt_issuer=args.jwt_issuer,
        ping_interval_s=args.ping_interval_s,
        webhook_connection=args.webhook_connection,
        webhook_workers=args.webhook_workers,
        webhook_outbox_path=args.webhook_outbox,
        **schedule,
    )
    from travelagent.monitor import start_tracemalloc_from_env

    try:
        start_tracemalloc_from_env("realtime")  # a diagnostic, off unless its variable is set
        app = create_app(config)
    except (ValueError, sqlite3.Error) as err:
        print(f"travelagent serve realtime: {err}", file=sys.stderr)
        return 2
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=lambda *_: print(f"realtime listening on http://{args.host}:{args.port}"),
            shutdown_timeout=2.0,
            keepalive_timeout=config.keepalive_timeout_s,
            # One log line per request would cost more than the request itself under load.
            access_log=logging.getLogger("aiohttp.access") if args.log_level == "debug" else None,
        )
    except OSError as err:
        print(
            f"travelagent serve realtime: cannot listen on {args.host}:{args.port}: {err}",
            file=sys.stderr,
        )
        return 1
    return 0
