"""The benchmark suite: ``make bench`` (``python -m travelagent.bench [--quick]``).

What the toolkit costs next to what it measures: the floors (bare WebSocket echoes),
the gateway and realtime round trips, stamping, links, idle-connection memory and the load
generator, each a median over interleaved rounds, printed beside its target and written as JSON
into ``data/runs/<id>-bench/``. A benchmark reports numbers; the tests check behaviour.
"""
