# Arbiter — the two commands a newcomer needs are `make demo` and `make test`.
# Both run `make setup` first when the environment is missing or pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.arbiter-setup

.PHONY: setup demo test test-fast test-postgres bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) bash scripts/setup.sh
	@touch $(STAMP)

demo: setup
	$(BIN)/arbiter demo $(DEMO_ARGS)

test: setup
	$(BIN)/python -m pytest

# Everything except the tests that run real packaged models or servers.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not argilla and not browser"

# The whole suite against PostgreSQL (127.0.0.1:5432, database `test`) instead of SQLite.
test-postgres: setup
	ARBITER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test $(BIN)/python -m pytest

bench: setup
	@for b in bench/*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check app labeling reward_models policies safety tests bench

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
