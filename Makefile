# `make serve` starts Memex on the embedded database; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch from local disk; any other torch request would download CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/memex serve

test: $(STAMP)
	scripts/test-parts
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/retrieval.py --dataset ../shared/datasets/beir/scifact --mode hybrid
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/search_latency.py --chunks 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
