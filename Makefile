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

## Serve the sample newsroom at http://127.0.0.1:8000/
run: $(VENV)/.installed
	FEEDS_CONTENT_DIR=$${FEEDS_CONTENT_DIR:-content} $(BIN)/granian --interface wsgi \
		--host $(HOST) --port $(PORT) --workers $(WORKERS) --blocking-threads 1 \
		--http 1 --no-ws --runtime-mode st app:app

## Lint, type-check and run every test
test: $(VENV)/.installed lint
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check feeds app.py tests bench
	$(BIN)/mypy --strict feeds app.py bench

## List every stored file that cannot be published
check: $(VENV)/.installed
	$(BIN)/flask --app app check

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache

## Benchmark against nginx and naive feedgen; writes BENCHMARKS.md (installs wrk and nginx if missing)
bench: $(VENV)/.installed
	$(BIN)/python -m bench
