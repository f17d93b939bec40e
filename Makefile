# Two entry points, each creating or refreshing its own virtual environment:
#   make run   - the main job: JupyterLab with the commrouter kernel and the demo notebook
#   make test  - lint and the test suite (installs Debian's chromium for the browser tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

clean:
	rm -rf $(VENV) build dist *.egg-info artifacts
