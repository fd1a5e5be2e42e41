"""Locust scenarios for the travel agent: the gateway, realtime and hybrid paths.

    locust -f loadtests/locustfile.py --arch gateway -H http://127.0.0.1:8787
    locust -f loadtests/locustfile.py --headless -u 20 -r 20 -t 15s --arch realtime \\
        --realtime-url http://127.0.0.1:8000 --publish http-pooled --stream true --pace open \\
        --rate-per-user 2 --run-dir data/runs/mine

``-H``/``--host`` is the worker (the gateway and the hybrid's agent); the realtime service is
``--realtime-url``. Locust's ``--help`` lists only its own options (it prints before reading a
locustfile); the travelagent options show in the web UI under "Custom parameters", and
docs/load.md explains each. A load shape
is used only when ``--shape`` (or ``TRAVELAGENT_SHAPE``) names one; otherwise ``-u``/``-r``/``-t``
drive the test as usual.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from locust import LoadTestShape
from travel_load import add_options, on_init, on_quitting, on_test_stop  # noqa: F401 (hooks)
from travel_users import GatewayUser, HybridUser, RealtimeUser  # noqa: F401 (found by Locust)

from travelagent.runner.shapes import Shape, parse_shape


def _requested_shape() -> str:
    """The shape named on the command line or in the environment, read before Locust parses
    options: a shape class must exist at import time, and only when one was asked for."""
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--shape" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--shape="):
            return arg.split("=", 1)[1]
    return os.environ.get("TRAVELAGENT_SHAPE", "")


def _shape_params(options: Any) -> dict[str, Any]:
    raw = getattr(options, "shape_params", "") or os.environ.get("TRAVELAGENT_SHAPE_PARAMS", "")
    params = json.loads(raw) if raw else {}
    if not isinstance(params, dict):
        raise ValueError("--shape-params must be a JSON object")
    return params


if _requested_shape():

    class TravelShape(LoadTestShape):
        """The shape chosen with ``--shape``; its fields come from ``--shape-params`` and fall
        back to ``-u`` (users) and ``-t`` (duration). ``spawn_rate`` is a shape field (0, the
        default, spawns each step at once): Locust's ``-r`` always has a value, so it cannot
        tell "not given" from 1."""

        use_common_options = True
        _shape: Shape | None = None

        def shape(self) -> Shape:
            if self._shape is None:
                opts = self.runner.environment.parsed_options if self.runner else None
                params: dict[str, Any] = {"kind": _requested_shape()}
                if opts is not None:
                    if opts.num_users:
                        params["users"] = opts.num_users
                    if opts.run_time:
                        params["duration_s"] = opts.run_time
                    params.update(_shape_params(opts))
                self._shape = parse_shape(params)
                if self._shape.open_loop and opts is not None:
                    # A constant arrival rate is an open loop; workers get these with the spawn.
                    opts.pace = "open"
                    opts.rate_per_user = self._shape.rate_per_user
            return self._shape

        def tick(self) -> tuple[int, float] | None:
            return self.shape().tick(self.get_run_time())
