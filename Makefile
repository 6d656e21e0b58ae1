# driftmon — the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest workers of `make test` (test files are shared out whole; 0 runs them in this process)
TEST_WORKERS ?= 2
# Every Python tree of the project: ruff and mypy (pyproject.toml [tool.mypy] files) cover all.
LINTED := monitor tests bench grafana scripts

.PHONY: all demo test lint typecheck layers unit venv system-packages bench bench-peers clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-packages:
	bash scripts/ensure-system-packages.sh

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: $(STAMP) system-packages
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(BIN)/python -m monitor.dev.demo

# Benchmarks (bench/README.md). `bench`: driftmon alone, a few minutes; results in bench/results/.
bench: $(STAMP)
	$(BIN)/python -m bench

# + the peers (Evidently, NannyML, alibi-detect, Frouros, River), each installed into its own
# virtualenv under .bench-venvs/ on first use (their pins conflict).
bench-peers: $(STAMP)
	$(BIN)/python -m bench --peers

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
