# The two commands of the README. Both set everything up first (idempotent, quick when done).
.PHONY: setup demo serve test lint

VENV ?= .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m InteractiveAdaptLib.cli demo --output output/demo

# The web front end on this computer, with the Colin27 head open (STUDIES=folder: that folder's studies
# instead); open the address it prints (http://127.0.0.1:8080/?secret=..., a new token at each start).
serve: setup
	$(VENV)/bin/interactive-adapt serve $(if $(STUDIES),--studies "$(STUDIES)",/usr/share/mricron/templates/ch2.nii.gz) --site "$(or $(SITE),default)"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	bash scripts/run_tests.sh
