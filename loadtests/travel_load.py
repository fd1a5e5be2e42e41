"""Locust plumbing for the travel agent scenarios: options, per-process recording, events.

Every finished message is written twice: exactly, with every stamp, to the run's Parquet part
files through one ``Recorder`` per process; and to Locust's ``request`` event (request type
``WS``) so the web UI, ``--csv`` and ``--html`` show it. Locust gets the *service time*
(``recv - send``) as the response time, under the path's name (``gateway``,
``realtime:http-pooled:stream``, ``hybrid``...). Time to first content goes to a statistics
table of its own (``FIRST``), not to Locust's request statistics, whose aggregate row would
otherwise count every message twice: it is logged at the end, written to
``<csv prefix>_first_stats.csv`` and served at ``/travelagent/first`` by the web UI. The Parquet
rows also hold the intended send time, so corrected latency (``recv - intended``) is computed
there.

Stopping: messages still in flight when users are stopped (the web UI's stop, Ctrl-C, ``-t``,
SIGTERM), after ``--stop-timeout`` of grace, are recorded with status ``stopped`` ("cut short by
the stop"): apart from failures, and never sent to Locust as failures. Each swarm started in
one Locust session (the web UI's start, again after a stop) is recorded as a run of its own:
the second goes to ``<run dir>-swarm2`` and so on, and each is merged when its swarm stops.

Master and workers (``--processes N`` or ``--master``/``--worker``): each worker writes its own
part files into the shared ``--run-dir``; the master (or a local runner) merges them when Locust
quits, after waiting until the part files hold as many messages as Locust counted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from argparse import Namespace
from itertools import count
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats

from travelagent.client import records
from travelagent.client.records import MessageRecord, Recorder, finalize_run
from travelagent.client.runinfo import new_run_id
from travelagent.config import JWT_SECRET_ENV, secret

logger = logging.getLogger("travelagent.load")

REQUEST_TYPE = "WS"  # one end-to-end message
STOPPED = "stopped"  # a message in flight when its user was stopped
# Time to first content per path, apart from Locust's request statistics (see above).
FIRST = RequestStats()
ARCHES = ("gateway", "realtime", "hybrid")
PUBLISH_MODES = ("http-new", "http-pooled", "ws-persistent")


def _bool_or_none(value: str) -> str:
    if value.lower() not in ("true", "false", "default", ""):
        raise ValueError("must be true, false or default")
    return value.lower()


def _spread_ms(value: str) -> float:
    ms = float(value)  # a ValueError names the option in argparse's message
    if not 0 <= ms < float("inf"):
        raise ValueError("must be a number of ms >= 0")
    return ms


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    g = parser  # Locust's own parser: options show in --help, the web UI and config files
    g.add_argument(
        "--arch", choices=["", *ARCHES], default="", help="which path (picks the user class)"
    )
    g.add_argument(
        "--publish", choices=["", *PUBLISH_MODES], default="", help="publish mode label for records"
    )
    g.add_argument(
        "--stream",
        type=_bool_or_none,
        default="default",
        help="ask for streamed replies: true, false, or default (the server's)",
    )
    g.add_argument(
        "--pace", choices=["closed", "open"], default="closed", help="closed or open loop"
    )
    g.add_argument(
        "--rate-per-user", type=float, default=1.0, help="open loop: messages/s per user"
    )
    g.add_argument(
        "--arrivals", choices=["uniform", "poisson"], default="uniform", help="open loop gaps"
    )
    g.add_argument(
        "--think-ms", type=float, default=0.0, help="closed loop: pause after each reply"
    )
    g.add_argument(
        "--start-spread-ms",
        type=_spread_ms,
        default=0.0,
        help="closed loop: spread the users' first sends over this many ms (0: all at once)",
    )
    g.add_argument(
        "--run-dir",
        default="",
        help="run directory for Parquet records (default: a new data/runs/<id>)",
    )
    g.add_argument(
        "--run-id", default="", help="run id in records (default: the run directory's name)"
    )
    g.add_argument("--cell", default="", help="cell label in records")
    g.add_argument("--gateway-url", default="", help="worker base URL or ws URL (default: --host)")
    g.add_argument("--realtime-url", default="", help="realtime service base URL or ws URL")
    g.add_argument(
        "--jwt-secret",
        default="",
        env_var=JWT_SECRET_ENV,
        is_secret=True,
        help="HS256 key for connection tokens",
    )
    g.add_argument("--message-mix", default="default", help="named question set or a text file")
    g.add_argument(
        "--timeout-s", type=float, default=30.0, help="a message without reply by then times out"
    )
    g.add_argument("--room", default="lobby", help="hybrid: the room joined for presence")
    g.add_argument(
        "--shape", default="", help="steps|ramp|spike|constant|constant-rate (or TRAVELAGENT_SHAPE)"
    )
    g.add_argument(
        "--shape-params", default="", help="shape fields as JSON (or TRAVELAGENT_SHAPE_PARAMS)"
    )
    g.add_argument("--user-prefix", default="", help="prefix of user ids (default: host-pid)")
    g.add_argument(
        "--message-seed",
        type=int,
        default=0,
        help="user k sends the same texts in the same order in every run with this seed "
        "(paired cells)",
    )


def options(env: Environment) -> Namespace:
    return env.parsed_options if env.parsed_options is not None else Namespace()


def stream_flag(opts: Namespace) -> bool | None:
    return {"true": True, "false": False}.get(getattr(opts, "stream", "default"))


def path_name(arch: str, publish: str, stream: bool | None) -> str:
    """Locust's name for a path: ``gateway``, ``realtime:http-pooled:stream``, ``hybrid:stream``."""
    name = arch
    if arch == "realtime" and publish:
        name += f":{publish}"
    if stream:
        name += ":stream"
    return name


_user_numbers = count(1)


def next_user_id(opts: Namespace) -> tuple[str, int]:
    """A unique user id and the user's number k in this process (1, 2, ...): user k of every
    cell sends the same message sequence (see ``messages.message_rng``)."""
    # The pid keeps ids unique across the processes of one run (--processes, workers).
    prefix = f"{getattr(opts, 'user_prefix', '') or socket.gethostname()[:12]}-{os.getpid()}"
    k = next(_user_numbers)
    return f"{prefix}-u{k}", k


class ProcessRecords:
    """The one recorder of this process, created when the first record arrives (after a fork)."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self._run_dir = ""  # the option the recorder was made for (compared per message)
        self.late_sends = 0
        self.sends = 0

    def get(self, opts: Namespace) -> Recorder | None:
        run_dir = getattr(opts, "run_dir", "")
        if not run_dir:
            return None
        if self.recorder is None or run_dir != self._run_dir:
            if self.recorder is None or self.recorder.run_dir != Path(run_dir):
                self.flush()
                self.recorder = Recorder(run_dir, tag=f"{socket.gethostname()}-{os.getpid()}")
            self._run_dir = run_dir
        return self.recorder

    def flush(self) -> None:
        if self.recorder is not None:
            self.recorder.flush()


RECORDS = ProcessRecords()


def record(env: Environment, rec: MessageRecord, name: str) -> None:
    """File one finished message: Parquet (exact) and Locust's request event (service time)."""
    opts = options(env)
    rec.run = (
        rec.run or getattr(opts, "run_id", "") or Path(getattr(opts, "run_dir", "") or ".").name
    )
    recorder = RECORDS.get(opts)
    if recorder is not None:
        recorder.add(rec)
    if rec.status == STOPPED:
        return  # cut short by the stop: in the records, not a failure in Locust's statistics
    end_ns = rec.recv_ns or time.time_ns()
    exc = None if rec.status == "ok" else RuntimeError(f"{rec.status}: {rec.error}")
    env.events.request.fire(
        request_type=REQUEST_TYPE,
        name=name,
        response_time=(end_ns - rec.send_ns) / 1e6,
        response_length=rec.bytes,
        exception=exc,
        context={"msg_id": rec.msg_id, "user": rec.user},
    )
    if rec.status == "ok" and rec.first_ns is not None:
        FIRST.log_request(REQUEST_TYPE, name, round((rec.first_ns - rec.send_ns) / 1e6), 0)


def first_table(stats: RequestStats) -> list[dict[str, Any]]:
    """Time to first content per path: count and percentiles (ms)."""
    rows = []
    for (name, _method), e in sorted(stats.entries.items()):
        pct = {f"{int(q * 100)}%": e.get_response_time_percentile(q) for q in (0.5, 0.9, 0.99)}
        row = {"Name": name, "Count": e.num_requests, **pct}
        rows.append({**row, "Max": round(e.max_response_time or 0, 1)})
    return rows


def write_first_csv(csv_prefix: str) -> None:
    import csv

    rows = first_table(FIRST)
    path = Path(f"{csv_prefix}_first_stats.csv")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["Name", "Count", "50%", "90%", "99%", "Max"])
        w.writeheader()
        w.writerows(rows)


def expected_messages(env: Environment) -> int:
    """Messages Locust counted (all processes, on the master): what the Parquet must hold."""
    total = 0
    for (_name, method), entry in env.stats.entries.items():
        if method == REQUEST_TYPE:
            total += entry.num_requests
    return total


def recorded_messages(run_dir: Path) -> int:
    """Messages in the part files and in the merged file (a local run merged its swarm when it
    stopped, before Locust quits)."""
    import pyarrow.parquet as pq

    parts = run_dir / "parts"
    files = list(parts.glob("messages-*.parquet")) if parts.exists() else []
    if (run_dir / "messages.parquet").exists():
        files.append(run_dir / "messages.parquet")
    return sum(pq.ParquetFile(p).metadata.num_rows for p in files)


@events.init.add_listener
def on_init(environment: Environment, **_kw: Any) -> None:
    app = environment.web_ui.app if environment.web_ui is not None else None
    if app is not None:

        @app.route("/travelagent/first")
        def first_content() -> Any:
            """Time to first content per path (ms), kept apart from the request statistics."""
            from flask import jsonify

            return jsonify(first_table(FIRST))

    opts = environment.parsed_options
    if opts is None:
        return
    records.warm_up()  # pyarrow's first table imports pandas: now, not at the first flush
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        # The master decides the run directory; workers receive it with the spawn message.
        if not opts.run_dir:
            opts.run_dir = str(Path("data/runs") / new_run_id("locust-"))
        if not opts.run_id:
            opts.run_id = Path(opts.run_dir).name
        if opts.arch and not opts.user_classes:
            from travel_users import CLASSES_BY_ARCH

            environment.user_classes[:] = [CLASSES_BY_ARCH[opts.arch]]
        if not opts.jwt_secret:
            opts.jwt_secret = secret(JWT_SECRET_ENV)
        logger.info("travelagent: records go to %s", opts.run_dir)
    if isinstance(runner, MasterRunner):
        # A quitting master tells workers to quit and waits only 0.5 s for their last
        # statistics; a worker first stops its users (up to --stop-timeout), so messages ending
        # in the last moments would be missing from the master's counts (never from the
        # Parquet). Waiting until every worker has said it quit keeps the two equal.
        original_quit = runner.quit

        def quit_after_workers() -> None:
            from locust.rpc import Message

            for client in list(runner.clients.all):
                runner.server.send_to_client(Message("quit", None, client.id))
            deadline = time.monotonic() + float(environment.stop_timeout or 0) + 10.0
            while runner.clients.all and time.monotonic() < deadline:
                gevent.sleep(0.1)
            original_quit()

        runner.quit = quit_after_workers  # type: ignore[method-assign]


@events.init.add_listener
def fresh_clock(**_kw: Any) -> None:
    """Bring the gevent loop's clock up to now, last thing before Locust sets its timers.

    Locust arms ``-t/--run-time`` with ``gevent.spawn_later``, which counts from the loop's
    cached time; the loop has not run since it was made, before the imports and the init hooks
    (1-3 s here), so the run stopped that much early: a ``-t 4s`` run drove load for 1.5-2.5 s.
    """
    gevent.get_hub().loop.update_now()


_swarms = count(1)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kw: Any) -> None:
    """A new swarm in the same Locust session is a run of its own (``<run dir>-swarmN``)."""
    opts = environment.parsed_options
    if opts is None or isinstance(environment.runner, WorkerRunner) or not opts.run_dir:
        return
    n = next(_swarms)
    first = getattr(opts, "first_run_dir", "") or opts.run_dir
    opts.first_run_dir = first
    FIRST.reset_all()
    if n > 1:
        base = Path(first)
        opts.run_dir = str(base.with_name(f"{base.name}-swarm{n}"))
        opts.run_id = Path(opts.run_dir).name
        logger.info("travelagent: swarm %d records go to %s", n, opts.run_dir)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_kw: Any) -> None:
    RECORDS.flush()
    if RECORDS.sends:
        logger.info(
            "travelagent: open loop sent %d messages, %d late (more than 5 ms behind schedule)",
            RECORDS.sends,
            RECORDS.late_sends,
        )
    for row in first_table(FIRST):
        logger.info("travelagent: time to first content %s", row)
    runner = environment.runner
    opts = environment.parsed_options
    # A local runner's records are complete once its users stopped: merge this swarm's run now,
    # so a later swarm (web UI) starts a clean one. A master merges when it quits, once every
    # worker's part files have landed.
    local = runner is not None and not isinstance(runner, MasterRunner | WorkerRunner)
    run_dir = Path(str(getattr(opts, "run_dir", "") or "")) if opts is not None else None
    if (
        local
        and run_dir is not None
        and str(run_dir) not in ("", ".")
        and (run_dir / "parts").exists()
    ):
        finalize_run(run_dir)


def write_final_stats_csv(environment: Environment, csv_prefix: str) -> None:
    """Rewrite ``<prefix>_stats.csv`` from the final statistics.

    Locust's CSV writer runs every second, so its last write can miss the messages that ended
    while users stopped; the request counts in this file must equal the Parquet rows. The new
    file replaces the old one atomically (Locust's own handle keeps the orphaned inode).
    """
    import csv

    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    path = Path(f"{csv_prefix}_stats.csv")
    tmp = path.with_suffix(".csv.tmp")
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(writer.requests_csv_columns)
        writer._requests_data_rows(w)
    os.replace(tmp, path)


@events.quitting.add_listener
def on_quitting(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if runner is not None and not isinstance(runner, MasterRunner):
        # Quitting without a stop first (SIGTERM, the web UI's quit): stop the users now, so
        # the messages they still have in flight are recorded (as lost) before the flush.
        runner.stop()
    RECORDS.flush()
    if isinstance(environment.runner, WorkerRunner):
        return
    opts = options(environment)
    if getattr(opts, "csv_prefix", None):
        write_final_stats_csv(environment, opts.csv_prefix)
        write_first_csv(opts.csv_prefix)
    if not getattr(opts, "run_dir", ""):
        return
    run_dir = Path(opts.run_dir)
    expected = expected_messages(environment)
    # Workers flush when they stop; give their part files a moment to land.
    deadline = time.monotonic() + (10.0 if isinstance(environment.runner, MasterRunner) else 0.0)
    while recorded_messages(run_dir) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    got = recorded_messages(run_dir)
    if got < expected:
        logger.warning("travelagent: Locust counted %d messages, part files hold %d", expected, got)
    if (run_dir / "parts").exists() or (run_dir / "messages.parquet").exists():
        n_msgs, n_stamps = finalize_run(run_dir)
        logger.info("travelagent: %s holds %d messages, %d stamps", run_dir, n_msgs, n_stamps)
