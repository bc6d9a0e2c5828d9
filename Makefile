# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE_VERSION := 3.37.0
AZURITE := .tools/node/node_modules/.bin/azurite-blob
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .tools/node azurite@$(AZURITE_VERSION)

test: install $(AZURITE)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS) tests

demo: install
	$(BIN)/python -m examples.demo

bench: install
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf $(VENV) .tools out

# Dataflow Flex Template: template-build, template-run, template-update, template-drain (see templates/README.md).
include templates/template.mk
