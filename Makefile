# Every target builds its own virtual environment first, so that a fresh
# clone needs nothing but Python 3.10+ with venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test test-min demo docs lint bench clean

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-docs: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[benchmarks]"
	touch $@

test: $(VENV)/.installed-test
	# SCIPY_ARRAY_API=1 as in scikit-learn's CI: its common checks need it.
	SCIPY_ARRAY_API=1 MPLBACKEND=Agg $(BIN)/python -m pytest

# The suite on the oldest releases pyproject.toml accepts, pinned in
# requirements/min.txt (tests/test_min_dependencies.py keeps the two equal).
# A venv of its own, rebuilt from scratch when the pins change; wheels only.
# The package is installed with the pins as constraints, so that pip fails
# if pyproject.toml's requirements do not accept them.
VENV_MIN ?= .venv-min
BIN_MIN := $(VENV_MIN)/bin

$(VENV_MIN)/.installed-test: pyproject.toml requirements/min.txt
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(BIN_MIN)/python -m pip install --quiet --upgrade pip
	$(BIN_MIN)/python -m pip install --quiet --only-binary=:all: -r requirements/min.txt
	$(BIN_MIN)/python -m pip install --quiet -c requirements/min.txt -e ".[test]"
	$(BIN_MIN)/python -m pip check
	touch $@

test-min: $(VENV_MIN)/.installed-test
	SCIPY_ARRAY_API=1 MPLBACKEND=Agg $(BIN_MIN)/python -m pytest

# Given a file name, the example saves its figure there (MPLBACKEND=Agg shows
# none); the sphinx-gallery build runs it without one.
demo: $(VENV)/.installed-test
	MPLBACKEND=Agg $(BIN)/python examples/plot_ridge_diabetes.py build/demo/ridge_diabetes.png

# From scratch every time: the gallery would otherwise keep the figures of an
# example whose file did not change, even when the package did.
docs: $(VENV)/.installed-docs
	rm -rf docs/_build/html docs/_build/doctrees docs/auto_examples docs/gen_modules
	MPLBACKEND=Agg $(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "Open docs/_build/html/index.html"

$(VENV)/.installed-lint: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[lint]"
	touch $@

lint: $(VENV)/.installed-lint
	$(BIN)/python -m ruff check skhypergrad tests examples benchmarks docs
	$(BIN)/python -m ruff format --check skhypergrad tests examples benchmarks docs

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_ridge.py

clean:
	rm -rf $(VENV) $(VENV_MIN) docs/_build docs/auto_examples docs/gen_modules
