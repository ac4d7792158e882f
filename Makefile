# The two commands of the README are `make demo` and `make test`; each sets itself up.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup images lint unit integration test flake demo soak bench docs docs-site clean

setup:
	@bash scripts/setup.sh

# Every image the k8s/ examples name, built here from Debian's packages and our builds
# (scripts/build_images.py); what is cached by its inputs is not built again.
images: setup
	$(PY) scripts/build_images.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

unit: setup
	$(PY) -m pytest tests/unit

integration: setup
	$(PY) -m pytest tests/integration

# Everything CI runs: lint, types, the images, and the unit, integration, image and e2e
# tiers with real peers,
# in two workers (each with its own loopback block and control plane; most of a test's
# time is waiting on real stores, so two share the two cores well).
WORKERS ?= 2
test: setup lint images
	$(PY) -m pytest -n $(WORKERS) --dist worksteal --durations=60 tests

# Find flaky tests: TESTS (pytest arguments; default the timing-sensitive modules) run RUNS
# times in a row, beside a CPU burner on one core with BURN=1; each failure is reported
# with its run's hash seed and log (.flake/<time>/).
RUNS ?= 3
flake: setup
	$(PY) scripts/flake.py --runs $(RUNS) $(if $(BURN),--burn) $(TESTS)

demo: setup images
	$(PY) -m player.demo

# Opt-in: 30 minutes (SOAK_MINUTES) of scale 3→5→3 and restarts with a writer (STORE).
soak: setup images
	$(PY) -m player.soak

bench: setup images
	$(PY) bench/cold_start.py
	$(PY) bench/readyz.py
	$(PY) bench/leave.py
	$(PY) bench/join.py
	$(PY) bench/player_start.py
	$(PY) bench/control_plane.py
	$(PY) bench/repair.py
	$(PY) bench/consul_full_restart.py
	$(PY) bench/galera_outage.py
	$(PY) bench/galera_joins.py
	$(PY) bench/disruption.py
	$(PY) bench/disruption.py --stores rqlite,etcd --members 7 --runs 1
	$(PY) bench/image_memory.py
	$(PY) bench/scale.py

docs: setup
	$(PY) scripts/config_reference.py --write docs/configuration.md --chart-schema charts/sts-agent/values.schema.json

# The docs site (mkdocs.yml) into site/, built strictly: a broken link or anchor fails.
docs-site: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf site $(VENV) .venv-lint .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
