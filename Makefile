# The two commands a new user runs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install up test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

## install: create or refresh .venv with podlife installed
install: $(STAMP)

## up: start the embedded cluster (API server, store, scheduler, network, one local node);
##     options go in ARGS, e.g. `make up ARGS="--port 16443 --sim-nodes 100"` (see `podlife up --help`)
ARGS ?=
up: install
	$(BIN)/podlife up $(ARGS)

## test: install with test extras and run the whole suite
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -q tests

## bench: run the walking-skeleton benchmark (100 pods on one local node)
bench: install
	$(BIN)/python benchmarks/pods_local.py

clean:
	rm -rf $(VENV) .venv-clients .podlife
