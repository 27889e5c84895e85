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
.PHONY: help setup azurite chromium run run-emulated test test-fast ui bench check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=25"
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# What `make run` needs: Python packages, Java, the Spark jars (fetched from Maven Central over
# HTTPS and checked against spark-jars/jars.lock by Python: no Maven) and the Dagster home.
setup: $(STAMP) ## virtualenv, packages, Java check, Spark jars, Dagster home (idempotent)
	@$(BIN)/python scripts/setup_jars.py
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || cp deploy/dagster-local.yaml $(DAGSTER_HOME)/dagster.yaml

azurite: ## Azurite, the Azure Storage emulator (npm): for run-emulated and the tests
	@test -x emulators/node_modules/.bin/azurite-blob || { \
	  command -v npm >/dev/null || { echo "error: install Node.js and npm (Azurite runs on them)" >&2; exit 1; }; \
	  npm ci --prefix emulators --no-audit --no-fund --loglevel=error; }

chromium: ## Debian's headless Chromium for the UI test (make test installs it when missing)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  command -v apt-get >/dev/null || { echo "error: install Chromium (the UI test drives it)" >&2; exit 1; }; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: setup ## simulate eight weeks in three regions, run the whole graph (needs Python, Java)
	$(BIN)/lakehouse demo

run-emulated: setup azurite ## the same story on moto, Azurite and fake-gcs-server (127.0.0.1)
	$(BIN)/lakehouse run-emulated $(EMULATED_ARGS)

test: setup azurite chromium ## the whole test suite (unit, Spark, emulators, MLflow server, daemon, UI)
	$(BIN)/pytest -q

test-fast: setup ## the edit loop: no Spark, emulators, servers or slow tests, on both cores
	$(BIN)/pytest -q -n 2 --ignore=tests/integration -m "not (spark or s3 or azure or gcs or mlflow or ui or dagster or postgres or slow)"

ui: setup ## Dagster web UI and daemon on 127.0.0.1:3000 over the data `make run` produced
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

bench: setup azurite ## every benchmark; each prints a JSON object last
	@for m in benchmarks/[a-z]*.py; do n=$$(basename $$m .py); echo "== $$n"; $(BIN)/python -m benchmarks.$$n || exit 1; done

check: $(STAMP) ## ruff, mypy, the layer and domain contracts (import-linter), unused code (vulture)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture pipelines assets resources jobs data_quality lakehouse devtools scripts vulture_allowlist.py --min-confidence 60

clean: ## remove the lake, Dagster state and caches (not the venv or jars)
	rm -rf .lake .dagster .mlflow .emulated .pytest_cache
