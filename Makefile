# Two commands on a fresh machine: `make demo` and `make test`. Every target creates the
# virtual environment and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list or the pinned set changes.
STAMP  := $(VENV)/.installed
# The exact OpenTelemetry set CI tests; pyproject.toml states the compatible ranges.
CONSTRAINTS := constraints.txt
# The extension's lint tools (eslint, prettier) are package.json's devDependencies.
NODE_STAMP := node_modules/.llmtrace-installed
# What `make test-fast` leaves out: real kernels, the browser, Arize Phoenix.
FAST := not slow and not browser and not phoenix

# Another consistent OpenTelemetry set, the oldest pyproject.toml allows, in a venv of its
# own, on the tests that drive the SDK, the OTLP exporters and the OpenAI instrumentation.
ALT_VENV   := build/otel-alt-venv
ALT_STAMP  := $(ALT_VENV)/.installed
ALT_TESTS  := tests/test_collector.py tests/test_frames.py tests/test_openai.py \
	tests/test_forward.py tests/test_one_place.py tests/test_dialects.py tests/test_manual.py \
	tests/test_same_call.py
ALT_TOOLS  := 'pytest>=8' 'pytest-asyncio>=0.24' 'pytest-timeout>=2.3' 'hypothesis>=6' \
	'httpx>=0.27'

.PHONY: demo test test-fast test-otel-alt lab bench lint format install clean

# `pip install -e` also builds the JupyterLab extension (hatch-jupyter-builder runs npm),
# so a change to the extension's sources re-runs it.
LABEXT_SOURCES := package.json package-lock.json tsconfig.json install.json \
	$(wildcard labextension/src/*.ts labextension/style/*)

$(STAMP): pyproject.toml $(CONSTRAINTS) $(LABEXT_SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	$(BIN)/python -m pip check
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/run_notebook.py notebooks/quickstart.ipynb --out build --summary

# pytest exits 5 when it ran no test, and make passes that on: a run of nothing fails.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Run again and again while working: bytecode is cached even where the environment says
# PYTHONDONTWRITEBYTECODE, so pytest's rewritten test modules are not rebuilt each run
# (about 5 of its ~50 s; __pycache__ is ignored by git).
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -m "$(FAST)" $(PYTEST_ARGS)

$(ALT_STAMP): pyproject.toml constraints-otel-alt.txt $(LABEXT_SOURCES)
	test -x $(ALT_VENV)/bin/python || $(PYTHON) -m venv $(ALT_VENV)
	$(ALT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ALT_VENV)/bin/python -m pip install --quiet -c constraints-otel-alt.txt -e '.[grpc]' \
		$(ALT_TOOLS)
	$(ALT_VENV)/bin/python -m pip check
	touch $@

test-otel-alt: $(ALT_STAMP)
	$(ALT_VENV)/bin/python -m pytest -q $(ALT_TESTS) $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet 'jupyterlab>=4.2,<5'
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check llmtrace_nb tests scripts benchmarks
	$(BIN)/mypy
	npm run --silent lint

# Rewrites the extension's sources as prettier and eslint --fix want them.
format: $(NODE_STAMP)
	npm run --silent format

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
