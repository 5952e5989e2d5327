# The two commands a new user runs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install up check system-deps test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

## install: create or refresh .venv with podlife installed, and (as root) the system packages
##     real containers need
install: $(STAMP) system-deps

## up: start the embedded cluster (API server, store, scheduler, network, one local node);
##     options go in ARGS, e.g. `make up ARGS="--port 16443 --sim-nodes 100"` (see `podlife up --help`)
ARGS ?=
up: install
	$(BIN)/podlife up $(ARGS)

## check: the build's own checks: lint (ruff), import layers (import-linter), types (mypy)
check: $(TEST_STAMP)
	$(BIN)/ruff check podlife tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

## system-deps: as root, install the system packages real containers and pod networking need (runc, conmon,
##     busybox-static, nginx-light, docker-registry, iproute2, nftables) when missing; without root, say so and go on
system-deps:
	@if [ "$$(id -u)" -eq 0 ]; then bash scripts/install-system-deps.sh; \
	else echo "system-deps: not root, not installing runc/conmon/busybox-static/nginx-light (real containers need them)"; fi

## test: install with test extras, run the checks and the whole suite
test: check system-deps
	$(BIN)/python -m pytest -n 2 -q tests

## bench: run the walking-skeleton benchmark (100 pods on one local node)
bench: install
	$(BIN)/python benchmarks/pods_local.py

clean:
	rm -rf $(VENV) .venv-clients .podlife
