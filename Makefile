# Evergraph: `make demo` runs the main job on the embedded defaults, `make test` runs the whole test suite,
# `make test-fast` the tests not marked slow (the edit loop).
# Both create .venv and install the project (CPU torch, faiss-cpu) when it is missing or pyproject changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOME_DIR ?= .evergraph
# A local wheel directory (the CPU torch build on this project's machines) is used when present.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP := $(BIN)/python -m pip install --quiet -c constraints.txt $(FIND_LINKS)

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[cpu,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evergraph run --home $(HOME_DIR)
	$(BIN)/evergraph guide "Which country is Tokyo located in?" --home $(HOME_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/lifelong.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/guide.py

clean:
	rm -rf $(HOME_DIR) .pytest_cache
