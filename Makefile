# tfcs3 developer commands. `make demo` and `make test` work on a fresh clone: they create
# .venv and install the pinned dependencies (setup.cfg + constraints.txt) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real data for tests, benchmarks and the demo: ../shared/data when it exists (overridable).
ifneq ($(wildcard ../shared/data),)
TFCS3_DATA_DIR ?= $(abspath ../shared/data)
endif
export TFCS3_DATA_DIR
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-all fuzz notebooks lint typecheck check benchmark install clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m tfcs3 demo $(ARGS)

# Two workers (pytest-xdist), one test file per worker at a time so module fixtures are built once.
test: $(STAMP)
	$(PY) -m pytest -q --durations=15 -m "not slow" -n 2 --dist loadfile tests

test-all: $(STAMP)
	$(PY) -m pytest -q tests

# The serving fuzz suite at 2,000 generated requests per signature (make test runs 250).
fuzz: $(STAMP)
	TFCS3_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q tests/export/test_fuzz.py

# Runs every notebook at its defaults and stores it with its outputs (ARGS: some notebooks).
notebooks: $(STAMP)
	$(PY) examples/store_outputs.py $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check tfcs3 tests benchmarks examples
	$(PY) -m ruff format --check tfcs3 tests benchmarks examples

typecheck: $(STAMP)
	$(PY) -m mypy

# What CI runs before the tests: the linters and the type checker (config in pyproject.toml).
check: lint typecheck

benchmark: $(STAMP)
	$(PY) benchmarks/quality.py $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
