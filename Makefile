# Two commands on a fresh machine: `make demo` and `make test`. Every target creates the
# virtual environment and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
STAMP  := $(VENV)/.installed

.PHONY: demo test lab bench lint install clean

# `pip install -e` also builds the JupyterLab extension (hatch-jupyter-builder runs npm),
# so a change to the extension's sources re-runs it.
LABEXT_SOURCES := package.json package-lock.json tsconfig.json install.json \
	$(wildcard labextension/src/*.ts labextension/style/*)

$(STAMP): pyproject.toml $(LABEXT_SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/run_notebook.py notebooks/quickstart.ipynb --out build --summary

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet 'jupyterlab>=4.2,<5'
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check llmtrace_nb tests scripts benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
