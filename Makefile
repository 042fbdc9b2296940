# twostep: `make run` to try it, `make test` to check it, `make bench` to measure it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint typecheck unit bench clean

$(BIN)/twostep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/twostep pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: install, initialise ./data on first use, serve on http://127.0.0.1:8000
run: $(BIN)/twostep
	$(BIN)/twostep init
	$(BIN)/twostep serve

## test: lint, type-check, then the whole suite on SQLite and on PostgreSQL (two pytest workers, one per core)
test: $(VENV)/.test-deps
	scripts/ensure-system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)
# Again on PostgreSQL, without the tests that run twostep in a subprocess
# ("live": their data directory decides the database, not the suite).
	TWOSTEP_TEST_DB=postgres $(BIN)/pytest -n 2 -m "not browser and not live" $(PYTEST_ARGS)

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

$(VENV)/.bench-deps: $(VENV)/.test-deps pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

## bench: performance targets (not part of `make test`); BENCH_ARGS=--quick for a short run
BENCH_ARGS ?=
bench: $(VENV)/.bench-deps
	scripts/ensure-bench-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
