# collective.upgradeapi: development commands.
#
#   make start   install everything, create a Plone site and serve it on :8080
#   make test    install everything, lint, run the whole test suite, build docs
#
# Options (make VAR=value target):
#   REWIND=6100  with `make start`: record the core profile at this version
#                before serving, so that the site has real pending upgrades.
#   HOST, PORT   with `make start`: where to listen (default 127.0.0.1:8080).
#   PYTEST_ARGS  with `make test`: extra arguments for pytest.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTANCE := var/instance
HOST ?= 127.0.0.1
PORT ?= 8080
REWIND ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.txt constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create the virtualenv and install everything

$(INSTANCE)/etc/zope.conf: | $(VENV)/.installed
	$(BIN)/mkwsgiinstance -d $(INSTANCE) -u admin:admin
	sed -i -e 's/^host = .*/host = %(http_host)s/' -e 's/^port = .*/port = %(http_port)s/' \
		$(INSTANCE)/etc/zope.ini

.PHONY: site
site: $(VENV)/.installed $(INSTANCE)/etc/zope.conf ## Create the Plone site "Plone" if missing
	$(BIN)/zconsole run $(INSTANCE)/etc/zope.conf scripts/create_site.py --rewind "$(REWIND)"

.PHONY: start
start: site ## Install, create the site and serve it on http://localhost:8080
	$(BIN)/runwsgi -v $(INSTANCE)/etc/zope.ini http_host=$(HOST) http_port=$(PORT)

.PHONY: lint
lint: $(VENV)/.installed ## Check code style
	$(BIN)/ruff check src tests scripts benchmarks docs/conf.py
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/codespell src tests/*.py benchmarks scripts docs/*.md README.md CHANGES.md

.PHONY: format
format: $(VENV)/.installed ## Apply code style
	$(BIN)/ruff check --fix src tests scripts benchmarks
	$(BIN)/ruff format src tests scripts benchmarks

.PHONY: pytest
pytest: $(VENV)/.installed ## Run the test suite only
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: docs
docs: $(VENV)/.installed ## Build the documentation, warnings are errors
	$(BIN)/sphinx-build -W --keep-going -b html -q docs docs/_build/html

.PHONY: release-check
release-check: $(VENV)/.installed ## Build the sdist and the wheel into dist/ and check them
	rm -rf dist src/*.egg-info
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/check-manifest --no-build-isolation

.PHONY: test
test: lint pytest docs ## Install, lint, run all tests, build the docs

.PHONY: clean
clean: ## Remove the virtualenv, the instance and build output
	rm -rf $(VENV) var docs/_build build src/*.egg-info
