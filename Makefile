# Everything runs inside .venv, created on first use from the python3 on PATH (3.11+).
PYTHON ?= python3
LINT_PATHS := reactor tests $(wildcard bench)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yaml

.PHONY: help install lint fmt test test-fast run run-paper sim bench clean install-service

help:
	@echo "make run        - reactor + embedded simulator with the demo book (no credentials needed)"
	@echo "make test       - lint (ruff, mypy) then the whole test suite"
	@echo "make sim        - the OKX v5 simulator alone on 127.0.0.1:8080"
	@echo "make run-paper  - against OKX demo trading (credentials from the environment)"
	@echo "make bench      - benchmarks, results in bench/results.json"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy reactor

fmt: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

test: lint
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -x

run: $(STAMP)
	$(BIN)/reactor run --config $(CONFIG)

run-paper: $(STAMP)
	$(BIN)/reactor run --config deploy/config.paper.yaml

sim: $(STAMP)
	$(BIN)/reactor sim --scenario scenarios/demo.yaml --port 8080 --price-walk

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench --readme

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache state

# As root: the app into /opt/okx-margin-reactor, units into /etc/systemd/system (deploy/install.sh).
install-service:
	bash deploy/install.sh
