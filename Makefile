# Persona: `make run` (bundled broker + one worker + real demo data; BROKER=kafka for Apache
# Kafka), `make test` (whole suite, `make hosts` included), `make bench` (BROKER=kafka: on
# Apache Kafka too; the `bench` extra brings its Quix Streams contender).
PYTHON ?= python3
BROKER ?= tansu
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# analytics.js (@segment/analytics-next, pinned by the lock file) for tests/e2e/test_segment_browser.py
AJS := tests/browser_segment
AJS_STAMP := $(AJS)/node_modules/.installed

.PHONY: run test test-fast chaos hosts net-tools bench bench-tools lint clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

$(AJS_STAMP): $(AJS)/package.json $(AJS)/package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq npm) >/dev/null 2>&1 || true
	@npm ci --prefix $(AJS) --no-audit --no-fund --loglevel=error >/dev/null 2>&1 \
		|| (echo 'make test: npm ci could not install @segment/analytics-next into $(AJS)/node_modules (Node.js and npm needed: apt-get install npm)' >&2; exit 1)
	@touch $@

run: $(STAMP)
	BROKER=$(BROKER) $(PY) -m app.cli.devrun

test: $(STAMP) $(AJS_STAMP)
	@# headless Chromium + driver for tests/e2e/test_browser.py (Debian packages; needs root)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
		|| echo 'chromium could not be installed: tests/e2e/test_browser.py will be skipped (listed at the end)'
	@# Java + Maven for the local Apache Kafka (app/harness/kafka.py): the e2e suite runs on it
	command -v java >/dev/null && command -v mvn >/dev/null || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven) \
		|| (echo 'make test: Java 17 and Maven are needed for the Kafka tests and could not be installed (apt-get install openjdk-17-jre-headless maven)' >&2; exit 1)
	$(PY) -m app.harness.kafka
	@$(MAKE) --no-print-directory net-tools
	$(PY) -m pytest -q -p no:cacheprovider -rs --durations=10 -n 2 --dist loadfile

# iproute2 + iptables for tests/e2e/test_hosts.py (network namespaces; needs root). The
# test itself fails with one line if namespaces cannot be had.
net-tools:
	@command -v ip >/dev/null && command -v iptables >/dev/null || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables) >/dev/null 2>&1 \
		|| echo 'make: iproute2 and iptables could not be installed: tests/e2e/test_hosts.py will fail' >&2

# Only the multi-host tests (tests/e2e/test_hosts.py, ~3-4 min, root; also part of `make test`):
# 3 workers and a 3-node Kafka on hosts of their own (network namespaces), a host cut off and
# healed, a slow link.
hosts: $(STAMP) net-tools
	$(PY) -m app.harness.kafka
	$(PY) -m pytest -q -p no:cacheprovider -m hosts -s tests/e2e/test_hosts.py

# Only the chaos test (tests/e2e/test_chaos.py, ~2 min; also part of `make test`).
chaos: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow -s

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e"

# wrk (Debian) drives the lookup load: a C client leaves the 2 cores to the server. Without
# it the bench falls back to an aiohttp client (a Python process as busy as the server) and
# its table says which tool ran.
bench-tools:
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq wrk) >/dev/null 2>&1 \
		|| echo 'make bench: wrk could not be installed (apt-get install wrk): lookups use the aiohttp client' >&2

bench: $(STAMP) bench-tools
	$(PY) -m bench.run $(if $(filter kafka,$(BROKER)),--kafka)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) data .run *.egg-info
