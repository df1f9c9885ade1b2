# dbops.admin: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export DBOPS_VENV := $(VENV)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_PYTHON_INTERPRETER := $(PY)
export PATH := $(VENV)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: help deps lint ruff ansible-lint sanity unit integration test demo sandbox sandbox-down build docs-check clean

help:
	@echo "make demo   - install everything, start the sandbox servers, run playbooks/daily.yml"
	@echo "make test   - ruff, ansible-lint, ansible-test sanity, unit and integration tests"
	@echo "make sandbox-down - stop the sandbox servers and delete their data"

deps:
	./scripts/bootstrap.sh

ruff: deps
	$(VENV)/bin/ruff check .

ansible-lint: deps
	$(VENV)/bin/ansible-lint --profile production --offline

lint: ruff ansible-lint

sanity: deps
	./scripts/sanity.sh

unit: deps
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

integration: deps
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

build: deps
	./scripts/build_and_install.sh

test: deps
	$(MAKE) --no-print-directory ruff
	$(MAKE) --no-print-directory ansible-lint
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory integration

sandbox: deps
	$(VENV)/bin/ansible-playbook -i playbooks/inventory/sandbox.yml playbooks/sandbox.yml

demo: deps sandbox
	$(VENV)/bin/ansible-playbook -i playbooks/inventory/sandbox.yml playbooks/daily.yml

# stop the sandbox servers and delete their data (the password files stay)
sandbox-down: deps
	$(VENV)/bin/ansible-playbook -i playbooks/inventory/sandbox.yml playbooks/sandbox.yml -e sandbox_state=absent

clean:
	rm -rf .build tests/output .pytest_cache .ruff_cache
