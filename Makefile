# residentd: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

# setup.py builds the C speedups (src/residentd/**/*.c): a change to one rebuilds them.
$(STAMP): pyproject.toml setup.py $(wildcard src/residentd/*.h src/residentd/*/*.c src/residentd/*/*/*.[ch])
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m residentd.demo

test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The suite runs twice: with the C speedups, and with RESIDENTD_PURE_PYTHON=1 (their Python
# versions, which is what an install without a compiler runs). Tests of parts with no C
# version (marked same_either_way: the load generators, the browser page, workers, the chat
# broker) run in the first only.
unit: $(STAMP)
	$(VENV)/bin/pytest -q
	RESIDENTD_PURE_PYTHON=1 $(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/echo.py
	$(PY) bench/idle_memory.py
	$(PY) bench/log_lag.py
	$(PY) bench/peers.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name "*.so" -delete
