# One-command set-up. `make test` = what CI runs (.ci/run): fresh venv, pinned CPU torch first,
# the project with its dev extras, the linter and format check (ruff), then the whole test suite
# (distributed CPU tests included).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: install test lint format bench demo clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: install lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Offline tiny default end to end: "pretrain" a 2-layer Llama (full finetuning, arithmetic only),
# prepare the data, RoCoFT-finetune it on the true/false task, evaluate before/after (tasks, greedy
# decoding and template come from the run's recipe).
demo: install
	$(VENV)/bin/rocoft-llm train recipes/tiny-llama-pretrain.yaml --overwrite
	$(VENV)/bin/rocoft-llm prepare --recipe recipes/tiny-llama-demo.yaml
	$(VENV)/bin/rocoft-llm train recipes/tiny-llama-demo.yaml --overwrite
	$(VENV)/bin/rocoft-llm eval --run runs/tiny-demo --with-base

# ruff (configured in pyproject.toml): lint, and fail when a file is not formatted (`make format` fixes)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/methods.py --config cpu

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
