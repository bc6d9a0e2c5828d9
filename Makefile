# The two commands of the README: `make demo` and `make test`. Both build .venv first, each installing only what it
# needs: `make demo` the package alone, `make test` (and `make bench`) the package with its test and bench extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE_VERSION := 3.37.0
AZURITE := .tools/node/node_modules/.bin/azurite-blob
PYTEST_ARGS ?=

.PHONY: install install-demo lint test demo bench clean

install: $(VENV)/.installed-test
install-demo: $(VENV)/.installed-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-test: setup.py pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

$(VENV)/.installed-demo: setup.py pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .tools/node azurite@$(AZURITE_VERSION)

## lint: ruff and mypy over the whole repository (settings in pyproject.toml)
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint $(AZURITE)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS) tests

demo: install-demo
	$(BIN)/python -m examples.demo

bench: install
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf $(VENV) .tools out .mypy_cache .ruff_cache

# Dataflow Flex Template: template-constraints, template-build, template-run, template-update, template-drain
# (see templates/README.md).
include templates/template.mk

# The engines of the streaming tests: make engines (see tools/engines/README.md).
include tools/engines/engines.mk
