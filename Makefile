# Two commands on a fresh machine: `make run` serves, `make test` tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test lint bench bench-quick clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## Only the virtualenv (for the operator commands before the first `make run`).
install: $(STAMP)

## Serve on http://127.0.0.1:8000 with the embedded PostgreSQL (or $$DATABASE_URL).
run: $(STAMP)
	$(BIN)/kinerja serve

## The same, seeded with a demo year (South Sumatra and more) on first start.
demo: $(STAMP)
	KINERJA_DEMO=true $(BIN)/kinerja serve

## Lint and the whole test suite against a real PostgreSQL.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

## Full benchmark (about 5 minutes on 2 cores): bench/results/latest.json and .md.
bench: $(STAMP)
	$(BIN)/python -m bench.run

## Smoke test of the benchmark (under a minute; the figures mean nothing).
bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick --out bench/.work/quick.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
