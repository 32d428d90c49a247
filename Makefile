# Two commands on a fresh machine: `make demo` and `make test`. Every target creates the
# virtual environment and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
STAMP  := $(VENV)/.installed
KERNEL := llmtrace-nb

.PHONY: demo test lab bench lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	# A kernel named after the project, so notebooks run in this venv whatever other
	# "python3" kernels the machine has.
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Python (llmtrace_nb)" >/dev/null
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/run_notebook.py notebooks/quickstart.ipynb --kernel $(KERNEL) \
		--out build --summary

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
