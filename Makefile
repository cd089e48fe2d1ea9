# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
BICAMERAL_DATA_DIR ?= .bicameral

.PHONY: install run test lint typecheck unit integration e2e bench lock clean

# Two distributions from this repository: the library (pyproject.toml) and the reference shop
# (shop/pyproject.toml), both editable, every dependency pinned by requirements.lock.
INSTALL := -e '.[all,dev]' -e ./shop

$(STAMP): pyproject.toml shop/pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock $(INSTALL)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/bicameral up --port $(PORT) --data-dir $(BICAMERAL_DATA_DIR)

LINT_PATHS := src shop/src tests $(wildcard bench)

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src shop/src

test: lint typecheck
	$(BIN)/pytest -q tests

unit: install
	$(BIN)/pytest -q tests/unit

bench: install
	$(BIN)/pip install -q -c requirements.lock -e '.[all,dev,bench]' -e ./shop
	$(BIN)/python -m bench $(if $(FULL),--full,)

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock:
	$(BIN)/pip install -q -e '.[all,dev,bench]' -e ./shop
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
