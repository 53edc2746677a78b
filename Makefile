# Two commands do all set-up on a fresh machine (Python 3.11+, Node 20+, no solc, no foundry):
#   make demo   bootstrap, then run the provisioning demo on the embedded devnet
#   make test   bootstrap, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_PY := $(VENV)/.installed
STAMP_JS := node_modules/.installed

.PHONY: bootstrap browser ocsptool postgres geth demo test test-fast bench lint build ape-test clean

bootstrap: $(STAMP_PY) $(STAMP_JS)

# dpki.pki._sigcheck (C, the indexer's bulk signature checks) builds against OpenSSL's headers
# (Debian's libssl-dev, installed when missing); without them dpki installs without it.
$(STAMP_PY): pyproject.toml requirements.lock dpki/pki/_sigcheck.c
	@test -f /usr/include/openssl/evp.h || { \
	  echo "installing Debian's libssl-dev for the signature extension (dpki/pki/_sigcheck.c)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q --no-install-recommends libssl-dev >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO apt-get install -y -q --no-install-recommends libssl-dev >/dev/null; } || \
	  echo "no OpenSSL headers: dpki installs without its C extension (slower index)" >&2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(STAMP_JS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: bootstrap
	$(BIN)/dpki demo

test: bootstrap browser ocsptool postgres geth
	$(BIN)/pytest

test-fast: bootstrap browser ocsptool postgres
	$(BIN)/pytest -m "not slow"

# go-ethereum v1.13.15 (the last release that seals Clique) from the Go module proxy, built
# once into .build/bin; Go >= 1.23 needs -checklinkname=0 for fjl/memsize's go:linkname.
GETH := .build/bin/geth
GETH_MODULE := github.com/ethereum/go-ethereum/cmd/geth@v1.13.15
geth: $(GETH)

$(GETH):
	@command -v go >/dev/null 2>&1 || { \
	  echo "geth v1.13.15 is not built and Go is not installed: install Go >= 1.21" \
	       "(https://go.dev/dl/), or set DPKI_GETH to a geth 1.13.15 binary" >&2; exit 1; }
	@echo "building geth v1.13.15 with go install (once; a few minutes)"
	GOBIN=$(CURDIR)/.build/bin go install -ldflags=-checklinkname=0 $(GETH_MODULE)

# The indexer tests use a PostgreSQL on 127.0.0.1:5432: install Debian's package when missing,
# start the cluster when it is down (tools/postgres-up).
postgres:
	@tools/postgres-up

# The web page test drives Debian's headless Chromium (no browser download of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the web page test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }

# The OCSP tests also ask with a second client: GnuTLS's ocsptool (Debian's gnutls-bin).
ocsptool:
	@command -v ocsptool >/dev/null 2>&1 || { \
	  echo "installing Debian's gnutls-bin for the GnuTLS OCSP client test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q --no-install-recommends gnutls-bin >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO apt-get install -y -q --no-install-recommends gnutls-bin >/dev/null; }; }

bench: bootstrap geth
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/provision.py --engine both
	$(BIN)/python bench/issuers.py
	$(BIN)/python bench/inquiry.py

# mypy is strict on dpki; tests and bench are checked relaxed (untyped test functions and
# fixtures allowed, re-exports of third-party packages accepted).
lint: bootstrap
	$(BIN)/ruff check dpki tests bench
	$(BIN)/ruff format --check dpki tests bench
	$(BIN)/mypy dpki
	$(BIN)/mypy --disable-error-code no-untyped-def --implicit-reexport --no-warn-unused-ignores tests bench
	node_modules/.bin/solhint --disc --noPoster --max-warnings 0 'contracts/*.sol'

build: bootstrap
	$(BIN)/dpki build

# ape with the npm solc registered as solc-v0.8.30 in a private solcx folder and tools/ first
# on PATH (tools/anvil adds --prune-history); tests/test_toolchain.py does the same.
APE_ENV = SOLCX_BINARY_PATH=$(CURDIR)/.build/solcx APE_DATA_FOLDER=$(CURDIR)/.build/ape PATH=$(CURDIR)/tools:$$PATH
ape-test: bootstrap
	mkdir -p .build/solcx && ln -sf $(CURDIR)/tools/solcjs .build/solcx/solc-v0.8.30
	$(APE_ENV) $(BIN)/ape compile
	$(APE_ENV) $(BIN)/ape test tests/ape -o addopts= --network ethereum:local:foundry

clean:
	rm -rf $(VENV) node_modules .dpki .build .pytest_cache dpki/pki/_sigcheck*.so
