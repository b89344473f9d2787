# collective.upgradeapi: development commands.
#
#   make start   install everything, create a Plone site and serve it on :8080
#   make test    install everything, lint, run the whole test suite on every
#                supported Plone version, build the docs, check the package
#
# Options (make VAR=value target):
#   PLONE=6.1    the Plone version to install and use: 6.0, 6.1 or 6.2 (the
#                default). Each has its own virtualenv and constraints file.
#   REWIND=6100  with `make start`: record the core profile at this version
#                before serving, so that the site has real pending upgrades.
#   HOST, PORT   with `make start`: where to listen (default 127.0.0.1:8080).
#   PYTEST_ARGS  with `make pytest` and `make test`: extra arguments for pytest.
#
# One Plone version alone: `make pytest PLONE=6.0`.

SHELL := /bin/bash
PYTHON ?= python3.11
PLONES := 6.0 6.1 6.2
PLONE ?= 6.2
ifeq ($(PLONE),6.2)
VENV := .venv
CONSTRAINTS := constraints.txt
INSTANCE := var/instance
else
VENV := .venv-$(PLONE)
CONSTRAINTS := constraints-$(PLONE).txt
INSTANCE := var/instance-$(PLONE)
endif
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
REWIND ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml client/pyproject.toml requirements.txt $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -r requirements.txt
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
	$(BIN)/ruff check src client/src tests scripts benchmarks docs/conf.py
	$(BIN)/ruff format --check src client/src tests scripts benchmarks
	$(BIN)/codespell src client tests/*.py tests/*/*.py benchmarks scripts docs/*.md README.md CHANGES.md

.PHONY: format
format: $(VENV)/.installed ## Apply code style
	$(BIN)/ruff check --fix src client/src tests scripts benchmarks
	$(BIN)/ruff format src client/src tests scripts benchmarks

.PHONY: pytest
pytest: $(VENV)/.installed ## Run the test suite on one Plone version (PLONE=...)
	@echo "== Plone $(PLONE): pytest in $(VENV)"
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: pytest-all
pytest-all: ## Run the test suite on every supported Plone version
	@bash scripts/ensure-postgresql.sh
	@bash scripts/ensure-chromium.sh
	@set -e; for version in $(PLONES); do \
		$(MAKE) --no-print-directory pytest PLONE=$$version; \
	done

.PHONY: docs
docs: $(VENV)/.installed ## Build the documentation, warnings are errors
	$(BIN)/sphinx-build -W --keep-going -b html -q docs docs/_build/html

.PHONY: release-check
release-check: $(VENV)/.installed ## Build the sdists and wheels (add-on, client) into dist/, check them
	rm -rf dist src/*.egg-info client/src/*.egg-info
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m build --outdir dist client
	$(BIN)/twine check --strict dist/*
	$(BIN)/check-manifest --no-build-isolation
	$(BIN)/check-manifest --no-build-isolation client

.PHONY: test
test: lint pytest-all docs release-check ## Install, lint, test on every Plone, build docs, check the package

.PHONY: clean
clean: ## Remove the virtualenvs, the instances and build output
	rm -rf .venv .venv-* var docs/_build build dist src/*.egg-info client/src/*.egg-info
