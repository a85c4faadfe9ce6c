# Every target creates (once) and reuses a virtual environment in .venv.
# PyTorch: the CPU build. Where pip cannot find a local CPU wheel, set
#   TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: install demo test test-slow test-all bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deeplandscape demo

test: $(STAMP)
	$(PYTEST) -q -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -q -m slow

test-all: $(STAMP)
	$(PYTEST) -q

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
