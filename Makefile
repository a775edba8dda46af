# The two commands that matter: `make dev` (the whole stack locally) and `make test` (every test).
# Everything else here is a step they depend on.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NPM    := npm --prefix edge

# Every wrangler/workerd run gets the offline settings of edge/offline.env (their one home; why is there).
include edge/offline.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' edge/offline.env)

.PHONY: setup dev test test-python test-edge lint format docs bench clean

setup: $(VENV)/.installed edge/node_modules/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[runtime,infra,dev]'
	touch $@

edge/node_modules/.installed: edge/package.json edge/package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $@

# The whole request path on this machine: runtime on the CPU + Worker in workerd (local D1/KV/DO).
dev: setup
	$(PY) -m scripts.dev

# Every test: Worker unit tests in workerd, then pytest (runtime, infra, e2e).
# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: setup test-edge test-python

test-edge:
	cd edge && npx vitest run

test-python:
	$(PY) -m pytest; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

# Every check that reads the code without running it, each tool pinned in pyproject.toml and constraints.txt or
# edge/package-lock.json. CI runs it before the tests (.ci/run, the pull-request workflow's lint job).
# actionlint also runs shellcheck over the workflows' `run:` blocks when it finds it on PATH.
PYTHON_SOURCES := runtime infra pulumi_offline tests bench scripts container
SHELL_SCRIPTS  := $(wildcard container/*.sh .github/scripts/*.sh scripts/*.sh)

lint: setup
	$(VENV)/bin/ruff check $(PYTHON_SOURCES)
	$(VENV)/bin/ruff format --check $(PYTHON_SOURCES)
	cd edge && npx tsc --noEmit && npx tsc --noEmit -p test
	cd edge && npx prettier --check .
	$(VENV)/bin/hadolint container/*Dockerfile*
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)

# `ruff format` and prettier rewrite the sources in place: what `make lint` then accepts.
format: setup
	$(VENV)/bin/ruff format $(PYTHON_SOURCES)
	cd edge && npx prettier --write .

# The configuration tables of README.md and docs/ from Pulumi.yaml, edge/wrangler.jsonc and the runtime
# settings (tests/e2e/test_readme.py fails when the committed ones differ).
docs: setup
	$(PY) -m scripts.docs

bench: setup
	$(PY) -m bench.runtime
	$(PY) -m bench.e2e
	$(PY) -m bench.plan
	$(PY) -m bench.dlp
	cd edge && node bench/edge.mjs

clean:
	rm -rf $(VENV) edge/node_modules .local
