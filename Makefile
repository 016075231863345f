# One entry point for everything. `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install install-node install-browser install-system demo sim test test-py test-js check fmt lint typecheck api-docs bench clean

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

# Debian packages the tests need: Chromium for the real-browser tests (Playwright drives it;
# never `playwright install`), redis-server for the scale-out tests, and for the network bed
# coturn, nftables and iproute2 (`ip`, `tc`: a slim image lacks them and the bed's tests would
# only skip).
DEBIAN_PACKAGES := chromium:chromium redis-server:redis-server turnserver:coturn nft:nftables \
	ip:iproute2 tc:iproute2

install-system:
	@missing=""; for pair in $(DEBIAN_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$(echo $$missing | tr ' ' '\n' | sort -u); \
		else echo "make: missing Debian packages:$$missing (run as root)" >&2; exit 1; fi; fi

install-browser: install-system

# Origin, signaling (tokens and Origin checks on), the page and a few headless agents;
# prints "Demo: http://..." and runs until Ctrl-C.
demo: install install-node
	$(PY) -m peer_agent.demo

# The simulator on the reference scenario (10 viewers of a live stream).
sim: install
	$(PY) -m peer_agent.sim.cli --live --peers 10 --segment-s 4 --duration-s 300 \
		--join-over-s 20 --latency-segments 3

test: install install-node install-system
	$(PY) -m pytest -q
	node --test tests/js/

test-py: install install-system
	$(PY) -m pytest -q

test-js: install-node
	node --test tests/js/

fmt: install
	$(PY) -m ruff format peer_agent signaling p2p_cli tests bench

lint: install
	$(PY) -m ruff check peer_agent signaling p2p_cli tests bench
	$(PY) -m ruff format --check peer_agent signaling p2p_cli tests bench

typecheck: install install-node
	$(PY) -m mypy peer_agent signaling p2p_cli bench
	node_modules/.bin/tsc -p tests/ts/tsconfig.json

# docs/api.md from the engine's TypeScript declarations (web_demo/index.d.ts).
api-docs: install-node
	node tools/apidoc.mjs

check: lint typecheck test

bench: install install-node install-system
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
