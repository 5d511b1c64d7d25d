# The two commands of the README. Both set everything up first (idempotent, quick when done).
.PHONY: setup demo test lint

VENV ?= .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m InteractiveAdaptLib.cli demo --output output/demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	bash scripts/run_tests.sh
