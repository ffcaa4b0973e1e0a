# The two commands: `make demo` runs the lab on this machine with sample data; `make test` runs every test.
# Both install what they need first (a venv in .venv, npm packages in node_modules, Debian's chromium for browser tests).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= 20000

.PHONY: demo test install lint bench clean down chromium system

$(STAMP): pyproject.toml constraints.txt package.json package-lock.json
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[channels,notebook,dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP) system

# as root, `lab up` gives notebook accounts search-only ACLs on closed directories (setfacl, Debian's acl);
# without root it sandboxes notebook servers with bubblewrap
system:
	@if [ "$$(id -u)" = 0 ]; then \
	  (command -v setfacl && command -v bwrap) >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq acl bubblewrap >/dev/null); \
	elif ! command -v bwrap >/dev/null 2>&1; then \
	  echo "NOTE: install bubblewrap (apt-get install bubblewrap) or run lab up as root to isolate notebooks"; \
	fi

demo: install
	$(BIN)/lab up --scale $(SCALE)

down:
	$(BIN)/lab down

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@dpkg -s fonts-noto-cjk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null)

lint: install
	$(BIN)/ruff check lab psi_service he_compute witness tests bench infra notebooks
	$(BIN)/ruff format --check lab psi_service he_compute witness tests bench infra
	$(BIN)/mypy lab psi_service he_compute witness

test: install chromium lint
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
