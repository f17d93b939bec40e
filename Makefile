# Two entry points, each creating or refreshing its own virtual environment:
#   make run   - the main job: JupyterLab with the commrouter kernel and the demo notebook
#   make test  - lint and the test suite (installs Debian's chromium for the browser tests)
#   make bench - commrouter against ipykernel's comms and the no-framework floor (BENCH_ARGS=...)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run demo test lint browser bench clean

# setuptools says "Editable installation ... be careful with folders in your working directory"
# for every editable install of a package-dir layout such as ours (each folder maps to
# commrouter.<folder>); it is information, not a problem, so it is not shown.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m commrouter lab

demo: $(STAMP)
	$(BIN)/python -m commrouter demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

browser:
	scripts/ensure-chromium

test: $(STAMP) lint browser
	$(BIN)/python -m pytest

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info artifacts
