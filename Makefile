# Fresh machine: `make demo` or `make test`. Both create .venv if it is missing and install rnnkit into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml $(wildcard rnnkit/native/*.cpp rnnkit/native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: on this machine 2.13.0 is a local CPU wheel; unpinned would fetch CUDA builds
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	# the C++ kernels of rnnkit's loops (about 30 s); without a compiler rnnkit runs those loops in Python
	$(BIN)/python -m rnnkit.native || true
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnkit demo

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
