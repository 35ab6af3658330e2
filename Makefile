# `make demo` and `make test` are the two set-up commands of the README: each creates
# .venv when missing and installs the package (with its dev extras) into it first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hwnas-installed

.PHONY: install demo test docs lint format wheel clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/hwnas demo

test: install
	$(PY) -m pytest -q

# the documentation site (mkdocs-material) into site/; `$(VENV)/bin/mkdocs serve` previews it
docs: install
	$(PY) benchmarks/report.py
	$(PY) -m mkdocs build --strict

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# a wheel (with the shipped latency tables and space YAMLs as package data) into dist/
wheel: install
	$(PY) -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) build dist site *.egg-info
