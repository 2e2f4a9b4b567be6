# Quick start: `make run` (the default experiment on the embedded MQ2008 Fold1), `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	PYTHONWARNINGS=ignore $(PY) -m pip install -qq -e ".[test]"  # -qq: errors only; setuptools' notices and index-location warnings are not ours
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m pipelines.experiment $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15 tests

bench: $(STAMP)
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_etl.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf outputs multirun benchmarks/_work .cache
