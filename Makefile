# Persona: `make run` (bundled broker + one worker + real demo data; BROKER=kafka for Apache
# Kafka), `make test` (whole suite), `make bench` (BROKER=kafka: on Apache Kafka too; the
# `bench` extra brings its Quix Streams contender).
PYTHON ?= python3
BROKER ?= tansu
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast chaos bench lint clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	BROKER=$(BROKER) $(PY) -m app.cli.devrun

test: $(STAMP)
	@# headless Chromium + driver for tests/e2e/test_browser.py (Debian packages; needs root)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
		|| echo 'chromium could not be installed: tests/e2e/test_browser.py will be skipped (listed at the end)'
	@# Java + Maven for the local Apache Kafka (app/harness/kafka.py): the e2e suite runs on it
	command -v java >/dev/null && command -v mvn >/dev/null || (apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven) \
		|| (echo 'make test: Java 17 and Maven are needed for the Kafka tests and could not be installed (apt-get install openjdk-17-jre-headless maven)' >&2; exit 1)
	$(PY) -m app.harness.kafka
	$(PY) -m pytest -q -p no:cacheprovider -rs --durations=10 -n 2 --dist loadfile

# Only the chaos test (tests/e2e/test_chaos.py, ~2 min; also part of `make test`).
chaos: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow -s

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e"

bench: $(STAMP)
	$(PY) -m bench.run $(if $(filter kafka,$(BROKER)),--kafka)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) data .run *.egg-info
