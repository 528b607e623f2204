# The two commands: `make run` serves the platform locally, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run test lint format install clean

run: install local.settings.json ## Azurite + the functions on http://127.0.0.1:$${PORT:-7071}
	$(PY) scripts/run_local.py

test: install ## unit + integration + e2e (starts its own in-memory Azurite on free ports)
	$(PY) -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json: | $(VENV)/.installed
	$(PY) scripts/init_local_settings.py

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .ruff_cache
