"""A scenario's [realtime] table: parsed, checked, round-tripped and passed to the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from travelagent.topology.plan import build_plan, needed_ports
from travelagent.topology.scenario import ScenarioError, parse_scenario


def test_realtime_table_reaches_the_command_line(tmp_path: Path) -> None:
    s = parse_scenario({
        "name": "x",
        "realtime": {"history": "sqlite", "webhook_outbox": True,
                     "webhook_retry_schedule_s": [0.2, 1, 2.5]},
    })  # fmt: skip
    assert parse_scenario(s.to_dict()) == s
    assert s.to_dict()["realtime"]["webhook_retry_schedule_s"] == [0.2, 1.0, 2.5]
    ports = {k: 10000 + i for i, k in enumerate(needed_ports(s))}
    plan = build_plan(s, ports, tmp_path, tmp_path / "links.json")
    argv = next(p.argv for p in plan.processes if p.name == "realtime")
    assert argv[argv.index("--history") + 1] == "sqlite"
    assert argv[argv.index("--db") + 1] == str(tmp_path / "realtime-history.sqlite3")
    assert argv[argv.index("--webhook-outbox") + 1] == str(tmp_path / "realtime-outbox.sqlite3")
    assert argv[argv.index("--webhook-retry-schedule-s") + 1] == "0.2,1,2.5"


def test_default_keeps_the_old_command_line(tmp_path: Path) -> None:
    s = parse_scenario({"name": "x"})
    ports = {k: 10000 + i for i, k in enumerate(needed_ports(s))}
    argv = next(
        p.argv
        for p in build_plan(s, ports, tmp_path, tmp_path / "l.json").processes
        if p.name == "realtime"
    )
    assert argv[argv.index("--history") + 1] == "memory"
    assert "--webhook-outbox" not in argv and "--webhook-retry-schedule-s" not in argv


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"history": "redis"}, "realtime.history: 'redis' is not valid"),
        ({"webhook_outbox": "yes"}, "realtime.webhook_outbox: must be true or false"),
        ({"webhook_retry_schedule_s": 5}, "must be a list of seconds"),
        ({"webhook_retry_schedule_s": [1, -2]}, "must be >= 0"),
        ({"webhook_retry_schedule_s": [float("inf")]}, "finite"),
        ({"ttl": 3}, "realtime.ttl: unknown key"),
    ],
)
def test_bad_realtime_tables_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_scenario({"name": "x", "realtime": table})


def test_a_connection_cap_reaches_both_servers_and_bad_caps_name_the_key(tmp_path: Path) -> None:
    # a load study from one address steps past the servers' default of 1000 sockets
    s = parse_scenario({"name": "x", "worker": {"max_connections_per_address": 4000},
                        "realtime": {"max_connections_per_address": 5000}})  # fmt: skip
    assert parse_scenario(s.to_dict()) == s
    ports = {k: 10000 + i for i, k in enumerate(needed_ports(s))}
    procs = {p.name: p.argv for p in build_plan(s, ports, tmp_path, tmp_path / "l.json").processes}
    for name, cap in (("worker", "4000"), ("realtime", "5000")):
        argv = procs[name]
        assert argv[argv.index("--max-connections-per-address") + 1] == cap
    default = parse_scenario({"name": "x"})
    procs = {p.name: p.argv for p in build_plan(default, ports, tmp_path, tmp_path / "l.json")
             .processes}  # fmt: skip
    assert "--max-connections-per-address" not in procs["worker"] + procs["realtime"]
    for section in ("worker", "realtime"):
        for bad, message in ((-1, "must be >= 0"), (2.5, "must be an integer")):
            with pytest.raises(ScenarioError, match=f"{section}.max_connections_per_address: "
                               f"{message}"):  # fmt: skip
                parse_scenario({"name": "x", section: {"max_connections_per_address": bad}})
