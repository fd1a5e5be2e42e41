"""``travelagent serve link``: one shaped TCP proxy (heavy imports inside ``main``)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", required=True, metavar="HOST:PORT", help="where clients connect"
    )
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT", help="where to forward")
    parser.add_argument("--name", default="link", help="name in the control API (default: link)")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay, each way")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="jitter scale (default 0)")
    parser.add_argument(
        "--jitter",
        choices=("normal", "uniform", "pareto"),
        default="normal",
        help="jitter distribution (default normal)",
    )
    parser.add_argument(
        "--setup-rtts",
        type=float,
        default=1.0,
        help="round trips a new connection's first bytes wait (default 1: a TCP handshake)",
    )
    parser.add_argument(
        "--bandwidth-kbps", type=float, default=0.0, help="bandwidth per direction (0: unlimited)"
    )
    parser.add_argument("--seed", type=int, default=None, help="jitter seed")
    parser.add_argument("--control", metavar="HOST:PORT", help="serve the control API here")
    parser.add_argument("--record", action="store_true", help="record per-chunk delays")
    parser.add_argument(
        "--dev", action="store_true", help="allow the development control token off loopback"
    )


def main(args: argparse.Namespace) -> int:
    import asyncio

    from travelagent.link.runtime import serve, split_addr
    from travelagent.link.schedule import LinkShape, ShapeError

    try:
        split_addr(args.listen)
        split_addr(args.upstream)
        if args.control:
            split_addr(args.control)
        shape = LinkShape(
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            jitter=args.jitter,
            setup_rtts=args.setup_rtts,
            bandwidth_kbps=args.bandwidth_kbps,
        )
    except (ValueError, ShapeError) as err:
        print(f"travelagent serve link: {err}", file=sys.stderr)
        return 2
    config = {
        "control": args.control,
        "dev": args.dev,
        "links": [
            {
                "name": args.name,
                "listen": args.listen,
                "upstream": args.upstream,
                "shape": shape.to_dict(),
                "seed": args.seed,
                "record": args.record,
            }
        ],
    }
    from travelagent.config import SecretError

    try:
        asyncio.run(serve(config))
    except SecretError as err:
        print(f"travelagent serve link: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"travelagent serve link: {err}", file=sys.stderr)
        return 1
    return 0
