# multicloud-lakehouse: `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON ?= $(CURDIR)/$(BIN)/python
# Silver's pseudonymization key. This default is for the local demo only: set your own (and in
# prod a real secret through the deployment's environment) before data leaves a laptop.
export LAKEHOUSE_PII_KEY ?= local-demo-key-not-a-secret

.DEFAULT_GOAL := help
.PHONY: help setup chromium run run-emulated test test-fast ui bench check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=25"
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP) ## virtualenv, packages, Java check, Spark jars (idempotent)
	@$(BIN)/python -c "from pipelines.spark.session import check_java; print(f'java {check_java()} ok')"
	@$(BIN)/python scripts/setup_jars.py
	@test -x emulators/node_modules/.bin/azurite-blob || npm ci --prefix emulators --no-audit --no-fund --loglevel=error
	@command -v chromium >/dev/null || $(MAKE) --no-print-directory chromium
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || cp deploy/dagster-local.yaml $(DAGSTER_HOME)/dagster.yaml

chromium: ## Debian's headless Chromium for the UI test (setup runs this when it is missing)
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  command -v apt-get >/dev/null || { echo "error: install Chromium (the UI test drives it)" >&2; exit 1; }; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

run: setup ## simulate a few weeks in three regions and materialize the graph
	$(BIN)/lakehouse demo

run-emulated: setup ## the same story on moto, Azurite and fake-gcs-server (127.0.0.1)
	$(BIN)/lakehouse run-emulated $(EMULATED_ARGS)

test: setup ## the whole test suite (unit, Spark, emulators, MLflow server, daemon, UI)
	$(BIN)/pytest -q

test-fast: setup ## the edit loop: no Spark, emulators, servers or slow tests, on both cores
	$(BIN)/pytest -q -n 2 --ignore=tests/integration -m "not (spark or s3 or azure or gcs or mlflow or ui or dagster or postgres or slow)"

ui: setup ## Dagster web UI and daemon on 127.0.0.1:3000 over the data `make run` produced
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

bench: setup ## every benchmark; each prints a JSON object last
	@for m in benchmarks/[a-z]*.py; do n=$$(basename $$m .py); echo "== $$n"; $(BIN)/python -m benchmarks.$$n || exit 1; done

check: setup ## ruff, mypy, the layer and domain contracts (import-linter), unused code (vulture)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture pipelines assets resources jobs data_quality lakehouse devtools scripts vulture_allowlist.py --min-confidence 60

clean: ## remove the lake, Dagster state and caches (not the venv or jars)
	rm -rf .lake .dagster .mlflow .emulated .pytest_cache
