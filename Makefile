# Two entry points that work on a fresh machine with only Python 3.10+:
#   make demo   - builds .venv and runs the main job on its embedded default
#   make test   - builds .venv and runs the default test suite (< 10 minutes on 2 cores)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: demo test test-all bench clean

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,progress]"
	touch $@

demo: $(VENV)/.ready
	$(VENV)/bin/lsc pretrain --cell lstm --layers 5 --width 128 --input-size 16 --time 100 --batch 32 \
		--target 0.5 --kinds time,depth --max-seconds 120 --out runs/demo

test: $(VENV)/.ready
	$(PY) -m pytest -q

test-all: $(VENV)/.ready
	$(PY) -m pytest -q -m ""

bench: $(VENV)/.ready
	$(PY) benchmarks/bench_radius.py
	$(PY) benchmarks/bench_pretrain.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
