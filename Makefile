# The few commands people use. `make demo` and `make test` each do all their own set-up.
SHELL := /bin/bash
PY311 ?= $(shell command -v python3.11 || command -v python3)
PY38 ?= $(shell pyenv prefix 3.8.18 2>/dev/null || echo /usr)/bin/python3.8
VENV := .venv
VENV38 := .venv38
DEBS := pebble bind9 bind9-utils pdns-server pdns-backend-sqlite3 sqlite3

.PHONY: demo test test-cloud test-agent38 lint debs venv venv38 bench clean

# The whole pipeline on one machine: BIND, Pebble, the DSM emulator, issue, publish, install.
demo: debs venv
	$(VENV)/bin/python demo/run.py

test: debs venv venv38 lint test-cloud test-agent38

debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.stamp: pyproject.toml
	$(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[cloud,s3,emulator,test]'
	touch $@
venv: $(VENV)/.stamp

# The agent on DSM 7's Python: 3.8 with cryptography 47.0.0, the last release for it.
$(VENV38)/.stamp: pyproject.toml
	$(PY38) -m venv $(VENV38)
	$(VENV38)/bin/pip install -q --upgrade 'pip<25'
	$(VENV38)/bin/pip install -q 'cryptography==47.0.0' -e '.[s3,emulator,test]'
	touch $@
venv38: $(VENV38)/.stamp

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-cloud: venv
	$(VENV)/bin/pytest -q

# Only the agent's tests (tests/agent imports nothing from cloud).
test-agent38: venv38
	$(VENV38)/bin/pytest -q -p no:cacheprovider tests/agent

bench: debs venv
	$(VENV)/bin/python bench/issue_latency.py

clean:
	rm -rf $(VENV) $(VENV38) .pytest_cache .ruff_cache .out
