"""``python -m travelagent.link --config links.json``: every link of a topology in one process."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m travelagent.link")
    parser.add_argument("--config", required=True, help="JSON file describing the links")
    parser.add_argument(
        "--dev", action="store_true", help="allow the development control token off loopback"
    )
    args = parser.parse_args(argv)
    from travelagent.config import SecretError
    from travelagent.link.faults import FaultError
    from travelagent.link.runtime import serve
    from travelagent.link.schedule import ShapeError

    try:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
        config["dev"] = args.dev or config.get("dev", False)
        asyncio.run(serve(config))
    except (OSError, ValueError, KeyError, TypeError, ShapeError, FaultError, SecretError) as err:
        print(f"travelagent links: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
