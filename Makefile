# One entry point for everything. `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install install-node install-browser demo test test-py test-js check fmt lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install-node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the real-browser tests (Playwright drives it; never `playwright install`).
install-browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else echo "make: chromium missing; run as root or: sudo apt-get install chromium" >&2; exit 1; fi; }

demo: install
	$(PY) -m peer_agent.sim.cli --live --peers 10 --segment-s 4 --duration-s 300 \
		--join-over-s 20 --latency-segments 3

test: install install-node install-browser
	$(PY) -m pytest -q
	node --test tests/js/

test-py: install
	$(PY) -m pytest -q

test-js: install-node
	node --test tests/js/

fmt: install
	$(PY) -m ruff format peer_agent signaling tests bench

lint: install
	$(PY) -m ruff check peer_agent signaling tests bench
	$(PY) -m ruff format --check peer_agent signaling tests bench

typecheck: install
	$(PY) -m mypy peer_agent signaling

check: lint typecheck test

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
