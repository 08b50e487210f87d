# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Web workers; empty: one per core.
WORKERS ?=

.PHONY: run test lint lock bench check clean

# Everything is installed from the hashed locks, never resolved afresh: `make run` needs only the
# runtime lock; tests, linters and benchmarks add the dev lock (the same runtime pins, and theirs).
$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

## Re-lock after changing a dependency in pyproject.toml (LOCK_FLAGS=--upgrade lifts every pin it may)
LOCK := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(VENV)/.installed
	$(LOCK) --output-file requirements.txt
	$(LOCK) --group dev --constraint requirements.txt --output-file requirements-dev.txt

## Serve the sample newsroom at http://127.0.0.1:8000/ (granian, and the indexer beside it);
## an access log line per request on standard output; `kill -HUP <pid>` reloads the web workers
run: $(VENV)/.runtime
	@# Compiled once here, so that no process compiles them as it starts (PYTHONDONTWRITEBYTECODE);
	@# a checkout that cannot be written to is served all the same.
	-$(BIN)/python -m compileall -q feeds app.py
	FEEDS_CONTENT_DIR=$${FEEDS_CONTENT_DIR:-content} exec $(BIN)/flask --app app serve \
		--host $(HOST) --port $(PORT)$(if $(WORKERS), --workers $(WORKERS))

## Lint, type-check and run every test, measuring coverage (the floor is in pyproject.toml)
test: $(VENV)/.installed lint
	$(BIN)/pytest --cov=feeds --cov=app

## What the pre-commit hooks check; the files are listed in pyproject.toml (all but tools/)
lint: $(VENV)/.installed
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy --strict

## List every stored file that cannot be published
check: $(VENV)/.runtime
	$(BIN)/flask --app app check

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*

## Benchmark against nginx and naive feedgen (BENCHMARKS.md; installs wrk and nginx if missing),
## the whole archive on one machine (`make bench FEEDS_BENCH_SCALE=1000000` for a million articles),
## then the long chaos run (RELIABILITY.md)
bench: $(VENV)/.installed
	$(BIN)/python -m bench --scale-articles $${FEEDS_BENCH_SCALE:-100000}
	$(BIN)/python -m bench.chaos --long
