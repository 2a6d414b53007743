# Two commands on a fresh machine with only Python: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint types unit clean bench-faults bench-rate bench-windows bench-scale bench-split bench-concurrency bench-cost

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: venv
	$(BIN)/callqueue run samples/sample.csv --cps 50 --window 3 --report report.json

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/callqueue template > $(VENV)/callqueue-template.json
	$(BIN)/cfn-lint $(VENV)/callqueue-template.json

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest

test: lint types unit

# Benchmarks run outside `make test` and write their results under bench/.
bench-faults: venv
	$(BIN)/python bench/faults.py

bench-rate: venv
	$(BIN)/python bench/rate.py

bench-windows: venv
	$(BIN)/python bench/windows.py

bench-scale: venv
	$(BIN)/python bench/scale_sim.py

bench-split: venv
	$(BIN)/python bench/split.py

bench-concurrency: venv
	$(BIN)/python bench/concurrency.py

bench-cost: venv
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
