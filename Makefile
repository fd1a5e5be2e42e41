# One command per check; the same locally and in CI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint typecheck pytest report reference bench bench-versus bench-profile soak idle clean catalog \
	notebooks study load-study

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# uv installs the same packages as pip (same resolution, same index) in seconds rather than
	# minutes; pip stays the fallback where uv cannot be had.
	{ $(BIN)/python -m pip install -q uv && $(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'; } \
	  || { $(BIN)/python -m pip install -q --upgrade pip && $(BIN)/python -m pip install -q -e '.[dev]'; }
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check travelagent tests loadtests notebooks
	$(BIN)/ruff format --check travelagent tests loadtests notebooks

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --disallow-untyped-defs --ignore-missing-imports notebooks/*.py
	MYPYPATH=tests:loadtests $(BIN)/mypy --explicit-package-bases tests loadtests

# The notebooks' sources are notebooks/*.py (percent format); this brings each .ipynb in step.
notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9]*.py

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The main job: run the default experiment, then render the report from it.
report: $(STAMP)
	$(BIN)/travelagent run loadtests/experiments/default.toml
	$(BIN)/travelagent report

# The conditions sweep (loadtests/experiments/sweep.toml: 12 measured grid points x 6 paths,
# 8 s cells), then its report with the model's held-out check and the claims map: measured on
# 2 cores shared with other benchmark runs, 21 min 40 s on a fresh clone (the venv ~2.5 min, the
# run 16 min 17 s, the report ~3 min) and 21 min 19 s with the venv built; <= 30 minutes.
# A cell that fails (e.g. a port taken by another process) is listed and left out; the report
# is still rendered from the cells that ran.
study: $(STAMP)
	$(BIN)/travelagent run loadtests/experiments/sweep.toml || echo "make study: some cells failed (listed above); the report leaves them out"
	$(BIN)/travelagent report

# Load to saturation (loadtests/experiments/load.toml): open-loop arrival rate stepped up past
# the knee on the gateway and the realtime path with a persistent publisher socket.
load-study: $(STAMP)
	$(BIN)/travelagent run loadtests/experiments/load.toml || echo "make load-study: some cells failed (listed above); the report leaves them out"
	$(BIN)/travelagent report

# The newest run and its report become the committed reference (data/reference/).
reference: $(STAMP)
	$(BIN)/python -m travelagent.analysis.reference

# The benchmark suite (docs/bench.md): never part of `make test`; ~8 minutes on 2 cores.
# BENCH_ARGS=--quick for one round of short trials.
bench: $(STAMP)
	$(BIN)/python -m travelagent.bench $(BENCH_ARGS)

# Two commits side by side in one run (gateway and ws-persistent, old and new interleaved):
# make bench-versus VERSUS=main [VERSUS_NEW=HEAD] [VERSUS_ARGS=--rounds 5].
VERSUS ?= main
VERSUS_NEW ?= HEAD
bench-versus: $(STAMP)
	$(BIN)/python -m travelagent.bench.versus $(VERSUS) $(VERSUS_NEW) $(VERSUS_ARGS)

# The worker under py-spy at 20 gateway clients; prints the busiest functions.
bench-profile: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[profile]'
	$(BIN)/python -m travelagent.bench.profile $(PROFILE_ARGS)

# A soak (docs/chaos.md): SOAK_MINUTES of steady load on each path (gateway and realtime
# ws-persistent by default), RSS of every process over time; never part of `make test`.
SOAK_MINUTES ?= 5
soak: $(STAMP)
	$(BIN)/python -m travelagent.runner.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

# Memory per idle connection at 10,000 connections, gateway and realtime (the bench's section).
idle: $(STAMP)
	$(BIN)/python -m travelagent.bench --only memory --no-peer

catalog: $(STAMP)
	$(BIN)/python -m travelagent.agent.catalog_gen data/catalog

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
