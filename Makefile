# The README's two commands: `make figures` (main job) and `make test`.
# Both build the virtual environment first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of this version lies on the development machines' disk; elsewhere pip fetches
# it (or, failing that, the newest torch) from PyPI as usual.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup figures test test-fast lint bench clean

setup: $(VENV)/.installed

# `cluster` (submitit) too, so that the tests run the sweep through submitit's local executor.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_PIN)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[dev,cluster]"
	touch $@

figures: setup
	$(VENV)/bin/parrots figures
	$(VENV)/bin/parrots tables

test: setup
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -n 2 -q

test-fast: setup
	$(PY) -m pytest -n 2 -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/parrots bench solvers --json
	$(VENV)/bin/parrots bench generate --json

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
