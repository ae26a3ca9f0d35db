# `make run`: set up .venv and run the default job; `make test`: set up .venv and run every test;
# `make lint`: ruff (lint and import order) over the whole tree.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pipeline run configs/default.toml

# two workers (the machine's two cores); a test module's tests stay on one worker, so its fixtures train once
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/tokenize_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf work saved_models/*/ .pytest_cache
