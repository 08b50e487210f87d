# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: run test lint bench check clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## Serve the sample newsroom at http://127.0.0.1:8000/ (granian, and the indexer beside it)
run: $(VENV)/.installed
	FEEDS_CONTENT_DIR=$${FEEDS_CONTENT_DIR:-content} $(BIN)/flask --app app serve \
		--host $(HOST) --port $(PORT) --workers $(WORKERS)

## Lint, type-check and run every test
test: $(VENV)/.installed lint
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check feeds app.py gunicorn.conf.py tests bench
	$(BIN)/mypy --strict feeds app.py gunicorn.conf.py bench

## List every stored file that cannot be published
check: $(VENV)/.installed
	$(BIN)/flask --app app check

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache

## Benchmark against nginx and naive feedgen (BENCHMARKS.md; installs wrk and nginx if missing),
## then the long chaos run (RELIABILITY.md)
bench: $(VENV)/.installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.chaos --long
